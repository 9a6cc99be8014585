-- Per day (IST), direction and department: calls, answered, missed, answer rate,
-- talk time and the average wait of answered calls.
with calls as (
    select * from {{ ref('stg_smartflo__call_records') }}
),

departments as (
    select department_name, min(department_id) as department_id
    from {{ ref('stg_smartflo__departments') }}
    group by department_name
),

daily as (
    select
        call_date_ist,
        direction,
        coalesce(department_name, '(none)') as department_name,
        count(*) as calls,
        sum(case when outcome = 'answered' then 1 else 0 end) as answered,
        sum(case when outcome = 'missed' then 1 else 0 end) as missed,
        sum(talk_seconds) as talk_seconds,
        round(avg(wait_seconds), 1) as avg_wait_seconds
    from calls
    group by call_date_ist, direction, coalesce(department_name, '(none)')
)

select
    cast(daily.call_date_ist as varchar) || '|' || daily.direction || '|'
    || daily.department_name as calls_daily_id,
    daily.call_date_ist,
    daily.direction,
    daily.department_name,
    departments.department_id,
    daily.calls,
    daily.answered,
    daily.missed,
    round(1.0 * daily.answered / daily.calls, 4) as answer_rate,
    daily.talk_seconds,
    daily.avg_wait_seconds
from daily
left join departments on daily.department_name = departments.department_name
