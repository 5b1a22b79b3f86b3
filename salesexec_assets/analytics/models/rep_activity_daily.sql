-- rep_activity_daily: per action day, user and action type, how much a rep did.
-- Parameters: first day, last day (the partition days, inclusive).
-- Dialect-neutral: runs unchanged on DuckDB and PostgreSQL 15.
WITH days AS (
    SELECT CAST(? AS DATE) AS first_day, CAST(? AS DATE) AS last_day
),
actions AS (
    -- one row per action and day: an append-mode table keeps every pull, the newest wins
    SELECT *
    FROM (
        SELECT a.partition_date, a.action_uid, a.lead_uid, a.user_uid, a.user_name,
               a.action_type_name,
               row_number() OVER (
                   PARTITION BY a.partition_date, a.action_uid ORDER BY a._loaded_at DESC
               ) AS pull_rank
        FROM salesexec.all_actions AS a
        CROSS JOIN days AS d
        WHERE a.partition_date BETWEEN d.first_day AND d.last_day
    ) AS pulls
    WHERE pull_rank = 1
)
SELECT
    partition_date,
    user_uid,
    user_name,
    action_type_name,
    count(*) AS actions,
    count(DISTINCT lead_uid) AS leads_touched
FROM actions
GROUP BY partition_date, user_uid, user_name, action_type_name
ORDER BY partition_date, user_uid, user_name, action_type_name
