-- The account's departments (queues); rows removed in Smartflo left out.
select
    cast(id as varchar) as department_id,
    name as department_name,
    agent_count,
    use_as_queue
from {{ source('smartflo', 'departments') }}
where _sdc_deleted_at is null
