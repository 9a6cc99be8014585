-- One row per call record, typed and named once for the models after it.
select
    cast(id as varchar) as call_record_id,
    started_at as started_at_utc,
    {{ smartflo_ist_date('started_at') }} as call_date_ist,
    case lower(direction)
        when 'inbound' then 'inbound'
        when 'outbound' then 'outbound'
        else 'other'
    end as direction,
    -- Any status but "answered" (missed, busy, no answer, failed) is a missed call.
    case when lower(status) = 'answered' then 'answered' else 'missed' end as outcome,
    department_name,
    agent_name,
    agent_number,
    client_number,
    did_number,
    coalesce(call_duration, 0) as duration_seconds,
    coalesce(answered_seconds, 0) as talk_seconds,
    -- The caller's wait: the part of an answered call before it was answered.
    case
        when lower(status) = 'answered'
            then greatest(coalesce(call_duration, 0) - coalesce(answered_seconds, 0), 0)
    end as wait_seconds
from {{ source('smartflo', 'call_records') }}
