-- speed_to_lead: one row per lead added on a partition day, with its first contact.
-- Parameters: first day, last day (the partition days, inclusive).
-- First contact: the earliest Call, Email or SMS action at or after the lead was added,
-- over every stored action (of any partition day); ties broken by action_uid.
-- Dialect-neutral: runs unchanged on DuckDB and PostgreSQL 15.
WITH days AS (
    SELECT CAST(? AS DATE) AS first_day, CAST(? AS DATE) AS last_day
),
leads AS (
    -- one row per lead and day: an append-mode table keeps every pull, the newest wins
    SELECT partition_date, lead_uid, lead_type_uid, date_added_utc
    FROM (
        SELECT l.partition_date, l.lead_uid, l.lead_type_uid, l.date_added_utc,
               row_number() OVER (
                   PARTITION BY l.partition_date, l.lead_uid ORDER BY l._loaded_at DESC
               ) AS pull_rank
        FROM salesexec.all_leads AS l
        CROSS JOIN days AS d
        WHERE l.partition_date BETWEEN d.first_day AND d.last_day
    ) AS pulls
    WHERE pull_rank = 1
),
contacts AS (
    SELECT leads.partition_date, leads.lead_uid,
           a.action_date_utc, a.action_type_name, a.user_uid,
           row_number() OVER (
               PARTITION BY leads.partition_date, leads.lead_uid
               ORDER BY a.action_date_utc, a.action_uid
           ) AS contact_rank
    FROM leads
    JOIN salesexec.all_actions AS a
      ON a.lead_uid = leads.lead_uid
     AND a.action_date_utc >= leads.date_added_utc
     AND a.action_type_name IN ('Call', 'Email', 'SMS')
)
SELECT
    leads.partition_date,
    leads.lead_uid,
    leads.lead_type_uid,
    leads.date_added_utc,
    c.action_date_utc AS first_contact_utc,
    CAST(EXTRACT(EPOCH FROM (c.action_date_utc - leads.date_added_utc)) AS DOUBLE PRECISION)
        / 60.0 AS minutes_to_first_contact,
    c.action_type_name AS first_contact_type,
    c.user_uid AS first_contact_user_uid
FROM leads
LEFT JOIN contacts AS c
  ON c.partition_date = leads.partition_date
 AND c.lead_uid = leads.lead_uid
 AND c.contact_rank = 1
ORDER BY leads.partition_date, leads.lead_uid
