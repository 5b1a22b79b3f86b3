-- lead_funnel_daily: per day leads were added, lead type, source, campaign and branch,
-- how far the day's leads got. A cohort view: re-materializing a day recounts it from
-- the leads' current stage and the first contacts known by then.
-- Parameters: first day, last day (the partition days, inclusive).
-- Reads salesexec_analytics.speed_to_lead (a model: materialized first) for first contacts.
-- NULL source, campaign or branch is a group of its own (GROUP BY keeps NULL as a value).
-- Dialect-neutral: runs unchanged on DuckDB and PostgreSQL 15.
WITH days AS (
    SELECT CAST(? AS DATE) AS first_day, CAST(? AS DATE) AS last_day
),
leads AS (
    -- one row per lead and day: an append-mode table keeps every pull, the newest wins
    SELECT *
    FROM (
        SELECT l.partition_date, l.lead_uid, l.lead_type_uid, l.lead_source_name,
               l.campaign_name, l.branch_name, l.life_cycle_stage_name,
               row_number() OVER (
                   PARTITION BY l.partition_date, l.lead_uid ORDER BY l._loaded_at DESC
               ) AS pull_rank
        FROM salesexec.all_leads AS l
        CROSS JOIN days AS d
        WHERE l.partition_date BETWEEN d.first_day AND d.last_day
    ) AS pulls
    WHERE pull_rank = 1
),
cohort AS (
    SELECT leads.*,
           s.first_contact_utc IS NOT NULL AS contacted,
           s.minutes_to_first_contact
    FROM leads
    LEFT JOIN salesexec_analytics.speed_to_lead AS s
      ON s.partition_date = leads.partition_date AND s.lead_uid = leads.lead_uid
)
SELECT
    partition_date,
    lead_type_uid,
    lead_source_name,
    campaign_name,
    branch_name,
    count(*) AS leads_added,
    count(*) FILTER (WHERE contacted) AS leads_contacted,
    count(*) FILTER (
        WHERE contacted OR (life_cycle_stage_name IS NOT NULL AND life_cycle_stage_name <> 'New')
    ) AS leads_worked,
    count(*) FILTER (WHERE life_cycle_stage_name = 'Closed Won') AS leads_closed_won,
    count(*) FILTER (WHERE life_cycle_stage_name = 'Closed Lost') AS leads_closed_lost,
    CAST(count(*) FILTER (WHERE life_cycle_stage_name = 'Closed Won') AS DOUBLE PRECISION)
        / NULLIF(count(*) FILTER (
            WHERE life_cycle_stage_name IN ('Closed Won', 'Closed Lost')
        ), 0) AS win_rate,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY minutes_to_first_contact)
        AS median_minutes_to_first_contact
FROM cohort
GROUP BY partition_date, lead_type_uid, lead_source_name, campaign_name, branch_name
ORDER BY partition_date, lead_type_uid, lead_source_name, campaign_name, branch_name
