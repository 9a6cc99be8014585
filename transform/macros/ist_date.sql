{#- The India Standard Time date of a UTC instant: the day a contact centre in India
    counts a call on. -#}
{% macro smartflo_ist_date(column) %}
  {{- return(adapter.dispatch('smartflo_ist_date')(column)) -}}
{% endmacro %}

{#- DuckDB: target-duckdb writes TIMESTAMP WITH TIME ZONE. -#}
{% macro default__smartflo_ist_date(column) -%}
  cast(({{ column }} at time zone 'Asia/Kolkata') as date)
{%- endmacro %}

{#- PostgreSQL: target-postgres writes UTC into timestamp without time zone columns
    (meltano.yml pins its session to UTC). -#}
{% macro postgres__smartflo_ist_date(column) -%}
  cast((({{ column }} at time zone 'UTC') at time zone 'Asia/Kolkata') as date)
{%- endmacro %}
