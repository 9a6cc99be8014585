-- smartflo_calls_daily counts every call record exactly once: its calls add up to
-- the rows of call_records. A row here is a failure.
select loaded.calls as call_records, counted.calls as counted_in_calls_daily
from
    (select count(*) as calls from {{ source('smartflo', 'call_records') }}) as loaded,
    (select coalesce(sum(calls), 0) as calls from {{ ref('smartflo_calls_daily') }}) as counted
where loaded.calls <> counted.calls
