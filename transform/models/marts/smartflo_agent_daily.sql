-- Per agent and day (IST): calls, answered and talk time; the user the agent is,
-- when a user has the agent's name.
with calls as (
    select * from {{ ref('stg_smartflo__call_records') }}
    where agent_name is not null
),

users as (
    select user_name, min(user_id) as user_id
    from {{ ref('stg_smartflo__users') }}
    group by user_name
),

daily as (
    select
        call_date_ist,
        agent_name,
        count(*) as calls,
        sum(case when outcome = 'answered' then 1 else 0 end) as answered,
        sum(talk_seconds) as talk_seconds
    from calls
    group by call_date_ist, agent_name
)

select
    cast(daily.call_date_ist as varchar) || '|' || daily.agent_name as agent_daily_id,
    daily.call_date_ist,
    daily.agent_name,
    users.user_id,
    daily.calls,
    daily.answered,
    daily.talk_seconds
from daily
left join users on daily.agent_name = users.user_name
