-- §6: a number that appears in more than one table is hidden in all of them or in none
-- (the grand total; a profile's row total in every table with the same row dimension).
-- Returns the numbers hidden in some tables and shown in others.
with

published_cells as (

    select * from marts.published_cells

),

shared as (

    select
        case when "row" = 'total' then 'grand' else row_dim end as statistic,
        "row",
        count(distinct hidden) as states
    from published_cells
    where col = 'total'
    group by all

)

select * from shared where states > 1
