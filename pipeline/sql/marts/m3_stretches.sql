-- marts.m3_stretches: one row per citizen × stretch in an M3-equivalent match group,
-- definitions §3.
-- Parameters: $reference_date, $course_gap_days, $m3_groups.
-- The same merge as marts.courses, over the episodes in an M3-equivalent group (whatever their
-- benefit): the gap is measured between M3 episodes only, so an episode in another group lying
-- inside a short gap does not break the stretch. As in marts.courses, one sort of the episodes
-- finds the stretch starts, and a stretch ends with the latest end before the next one starts
-- (or with the citizen's last M3 episode); ties on start date may come in any order.
with

episodes as (

    select * from staging.episodes

),

m3_episodes as (

    -- definitions §7: episodes starting after the reference date are ignored.
    select
        citizen_id,
        start_date,
        least(coalesce(end_date, $reference_date), $reference_date) as end_date
    from episodes
    where start_date <= $reference_date
      and list_contains($m3_groups::varchar[], match_group)

),

in_start_order as (

    -- one sort: row_number and lead over the same order cost nothing more
    select
        citizen_id,
        start_date,
        end_date,
        max(end_date) over before_it as latest_end_before,
        row_number() over in_order as position,
        lead(start_date) over in_order is null as is_last
    from m3_episodes
    window
        in_order as (partition by citizen_id order by start_date),
        before_it as (in_order rows between unbounded preceding and 1 preceding)

),

boundaries as (

    -- the stretch starts, and each citizen's last M3 episode, which closes the last stretch
    -- (what a boundary tells the stretch before it: see marts.courses)
    select
        citizen_id,
        start_date,
        position,
        opens_stretch,
        greatest(latest_end_before, end_date) as latest_end,
        case when opens_stretch then latest_end_before
            else greatest(latest_end_before, end_date) end as closes_with,
        case when opens_stretch then position else position + 1 end as first_after
    from (
        select
            *,
            coalesce(start_date - latest_end_before > $course_gap_days + 1, true)
                as opens_stretch
        from in_start_order
    )
    where opens_stretch or is_last

),

bounded as (

    select
        citizen_id,
        sum(opens_stretch::integer) over (in_order rows unbounded preceding) as stretch_no,
        start_date as first_day,
        coalesce(lead(closes_with) over in_order, latest_end) as last_day,
        coalesce(lead(first_after) over in_order, position + 1) - position as episodes,
        opens_stretch
    from boundaries
    window in_order as (partition by citizen_id order by position)

),

stretches as (

    select
        citizen_id,
        stretch_no::integer as stretch_no,
        first_day,
        last_day,
        (last_day - first_day + 1)::integer as stretch_days,
        episodes::integer as episodes,
        $reference_date between first_day and last_day as covers_reference_date
    from bounded
    where opens_stretch

)

select * from stretches
