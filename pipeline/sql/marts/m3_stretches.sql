-- marts.m3_stretches: one row per citizen × stretch in an M3-equivalent match group,
-- definitions §3.
-- Parameters: $reference_date, $course_gap_days, $m3_groups.
-- The same merge as marts.courses, over the episodes in an M3-equivalent group (whatever their
-- benefit): the gap is measured between M3 episodes only, so an episode in another group lying
-- inside a short gap does not break the stretch.
-- The window order ends in `_line`, unique within the one episodes file (data contract), so
-- both windows see tied spells in the same order: a row's course number then never depends
-- on how the sort broke a tie. (An integer key: a text key would widen every sort row.)
with

episodes as (

    select * from staging.episodes

),

m3_episodes as (

    -- definitions §7: episodes starting after the reference date are ignored.
    select
        citizen_id,
        start_date,
        least(coalesce(end_date, $reference_date), $reference_date) as end_date,
        _line
    from episodes
    where start_date <= $reference_date
      and list_contains($m3_groups::varchar[], match_group)

),

with_latest_end as (

    select
        *,
        max(end_date) over (
            partition by citizen_id
            order by start_date, end_date, _line
            rows between unbounded preceding and 1 preceding
        ) as latest_end_before
    from m3_episodes

),

numbered as (

    select
        *,
        sum(
            coalesce(start_date - latest_end_before > $course_gap_days + 1, true)::integer
        ) over (
            partition by citizen_id
            order by start_date, end_date, _line
            rows unbounded preceding
        ) as stretch_no
    from with_latest_end

),

stretches as (

    select
        citizen_id,
        stretch_no::integer as stretch_no,
        min(start_date) as first_day,
        max(end_date) as last_day,
        (max(end_date) - min(start_date) + 1)::integer as stretch_days,
        count(*)::integer as episodes,
        $reference_date between min(start_date) and max(end_date) as covers_reference_date
    from numbered
    group by citizen_id, stretch_no

)

select * from stretches
