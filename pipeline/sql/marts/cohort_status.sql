-- marts.cohort_status (a view): definitions §8.1-8.2. One row per citizen in M3 on the
-- cohort date (the reference date minus $cohort_months months) × horizon (1, 3, 6 and 12
-- months after the cohort date, and the reference date; none after the reference date),
-- with the citizen's status on that day.
-- Parameters: $reference_date, $cohort_months, $support_excluded.
with

stretches as (

    select * from marts.m3_stretches

),

episodes as (

    select * from staging.episodes where start_date <= $reference_date

),

cohort_day as (

    select ($reference_date::date - to_months($cohort_months))::date as day

),

month_horizons as (

    select h.horizon, h.months, (c.day + to_months(h.months))::date as day
    from cohort_day as c,
        (values ('1m', 1), ('3m', 3), ('6m', 6), ('12m', 12)) as h(horizon, months)
    where (c.day + to_months(h.months))::date <= $reference_date

),

horizons as (

    select * from month_horizons
    union all
    -- the reference date, unless a horizon falls on it
    select 'reference_date', null, $reference_date::date
    where $reference_date::date not in (select day from month_horizons)

),

cohort as (

    select distinct s.citizen_id, c.day as cohort_date
    from stretches as s, cohort_day as c
    where c.day between s.first_day and s.last_day

),

grid as (

    select cohort.citizen_id, cohort.cohort_date, horizons.horizon, horizons.months,
        horizons.day
    from cohort, horizons

),

in_m3 as (

    select distinct grid.citizen_id, grid.horizon
    from grid
    join stretches as s
        on s.citizen_id = grid.citizen_id and grid.day between s.first_day and s.last_day

),

covering as (
    -- §8.1: the episode covering the day that started last; ties by the later end, then
    -- benefit and match group in code order, so the status never depends on row order
    select citizen_id, horizon, benefit, match_group
    from (
        select
            grid.citizen_id,
            grid.horizon,
            e.benefit,
            e.match_group,
            row_number() over (
                partition by grid.citizen_id, grid.horizon
                order by e.start_date desc, coalesce(e.end_date, $reference_date) desc,
                    e.benefit, e.match_group nulls last
            ) as pick
        from grid
        join episodes as e
            on e.citizen_id = grid.citizen_id
            and grid.day between e.start_date and coalesce(e.end_date, $reference_date)
    )
    where pick = 1

)

select
    grid.citizen_id,
    grid.cohort_date,
    grid.horizon,
    grid.months,
    grid.day,
    case
        when in_m3.citizen_id is not null then 'm3'
        when covering.citizen_id is null then 'off_support'
        when list_contains($support_excluded::varchar[], covering.benefit)
            then 'fleksjob_pension'
        when covering.match_group is not null then 'other_group'
        else 'other_benefit'
    end as status
from grid
left join in_m3 using (citizen_id, horizon)
left join covering using (citizen_id, horizon)
