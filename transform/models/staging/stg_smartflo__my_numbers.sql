-- The account's numbers (DIDs); rows removed in Smartflo left out.
select
    cast(id as varchar) as number_id,
    did,
    alias,
    name as number_name,
    destination
from {{ source('smartflo', 'my_numbers') }}
where _sdc_deleted_at is null
