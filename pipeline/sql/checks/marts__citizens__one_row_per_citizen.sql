-- marts.citizens has exactly one row per staged citizen: returns duplicated and missing ids.
with

marts_citizens as (

    select * from marts.citizens

),

staged_citizens as (

    select * from staging.citizens

),

duplicated as (

    select citizen_id, count(*) as rows_in_marts
    from marts_citizens
    group by citizen_id
    having count(*) <> 1

),

missing as (

    select citizen_id, 0 as rows_in_marts
    from staged_citizens
    anti join marts_citizens using (citizen_id)

),

offending as (

    select * from duplicated
    union all
    select * from missing

)

select * from offending
