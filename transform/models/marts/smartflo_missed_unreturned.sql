-- Missed inbound calls with no outbound call to the same number within
-- missed_call_return_hours (dbt_project.yml) after they started: who is waiting
-- for a call back.
with calls as (
    select * from {{ ref('stg_smartflo__call_records') }}
),

missed as (
    select * from calls
    where direction = 'inbound' and outcome = 'missed'
),

returned as (
    select client_number, started_at_utc from calls
    where direction = 'outbound'
)

select
    missed.call_record_id,
    missed.started_at_utc,
    missed.call_date_ist,
    missed.client_number,
    missed.did_number,
    missed.department_name,
    missed.agent_name
from missed
where not exists (
    select 1 from returned
    where
        returned.client_number = missed.client_number
        and returned.started_at_utc > missed.started_at_utc
        and returned.started_at_utc <= missed.started_at_utc
        + interval '{{ var("missed_call_return_hours") }} hours'
)
