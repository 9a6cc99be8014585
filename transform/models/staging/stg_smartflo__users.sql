-- The account's users (agents among them); rows removed in Smartflo left out.
select
    cast(id as varchar) as user_id,
    name as user_name,
    agent ->> 'id' as agent_id,
    extension
from {{ source('smartflo', 'users') }}
where _sdc_deleted_at is null
