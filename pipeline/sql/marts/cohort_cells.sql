-- marts.cohort_cells: the published cohort table (definitions §8.2,
-- docs/definitions-movement.md §8.5) before suppression, as counts. Internal.
-- Grain: one row per horizon × profile × status, with the totals: `profile` = 'total' (every
-- profile) and `status` = 'total' (the profile's cohort, the same number at every horizon:
-- each citizen of the cohort has one status per horizon). Every profile of marts.profiles
-- and every status is a row, a zero included, so the grid is complete.
-- `cell_table`, `cell_row`, `cell_col`: the number's key in the suppression
-- (`pipeline.movement.cohort_relations`), `cohort_<horizon>`: a profile's cohort is printed
-- once per horizon, and the suppression knows the printings are equal.
-- Reads marts.cohort_status (the segment stage's view) and marts.citizens (the profile),
-- marts.profiles (the codes and their depth order).
-- No parameters.
with

status as (

    select s.*, c.profile
    from marts.cohort_status as s
    join marts.citizens as c using (citizen_id)
    where c.profile is not null

),

horizons as (

    select distinct horizon, months, day from status

),

profiles as (

    select code as profile, row_number() over (order by depth, precedence) as profile_order
    from marts.profiles
    union all
    select 'total', 1000000

),

statuses as (

    select * from (values
        ('m3', 1), ('other_group', 2), ('fleksjob_pension', 3), ('other_benefit', 4),
        ('off_support', 5), ('total', 6)
    ) as s(status, status_order)

),

counted as (

    select horizon, profile, status, count(*) as n
    from status
    group by grouping sets ((horizon, profile, status), (horizon, profile), (horizon, status),
        (horizon))

),

grid as (

    select
        h.horizon,
        h.months,
        h.day,
        coalesce(h.months, 1000) as horizon_order,
        p.profile,
        p.profile_order,
        s.status,
        s.status_order
    from horizons as h, profiles as p, statuses as s

),

final as (

    select
        grid.horizon,
        grid.months,
        grid.day,
        grid.horizon_order,
        grid.profile,
        grid.profile_order,
        grid.status,
        grid.status_order,
        coalesce(counted.n, 0)::bigint as n,
        'cohort_' || grid.horizon as cell_table,
        grid.profile as cell_row,
        grid.status as cell_col
    from grid
    left join counted
        on counted.horizon = grid.horizon
        and coalesce(counted.profile, 'total') = grid.profile
        and coalesce(counted.status, 'total') = grid.status
    order by grid.horizon_order, grid.profile_order, grid.status_order

)

select * from final
