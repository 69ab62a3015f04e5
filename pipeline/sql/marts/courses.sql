-- marts.courses: one row per citizen × course (forløb) of public support, definitions §2.
-- Parameters: $reference_date, $course_gap_days, $support_excluded.
-- Gaps and islands with one sort of the episodes. In start order, an episode opens a new
-- spell (days covered without a break) when it starts more than one day after the latest end
-- before it, and a new course when it starts more than `course_gap_days` days after it (the
-- gap is the days strictly between). A spell ends with the latest end before the next spell
-- starts, so only the spell starts (and each citizen's last episode, which closes the last
-- spell) go on to a second, smaller window; courses are runs of spells.
-- Episodes tied on start date may come in any order: the first of them ends on or after
-- their common start, so it alone can open a spell, and no column below depends on which of
-- them came first.
with

episodes as (

    select * from staging.episodes

),

support_episodes as (

    -- definitions §7: episodes starting after the reference date are ignored;
    -- an ongoing episode runs to the reference date, and none runs past it.
    select
        citizen_id,
        start_date,
        least(coalesce(end_date, $reference_date), $reference_date) as end_date
    from episodes
    where start_date <= $reference_date
      and not list_contains($support_excluded::varchar[], benefit)

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
    from support_episodes
    window
        in_order as (partition by citizen_id order by start_date),
        before_it as (in_order rows between unbounded preceding and 1 preceding)

),

marked as (

    select
        *,
        coalesce(start_date - latest_end_before > 1, true) as opens_spell,
        coalesce(start_date - latest_end_before > $course_gap_days + 1, true) as opens_course,
        greatest(latest_end_before, end_date) as latest_end
    from in_start_order

),

boundaries as (

    -- what a boundary tells the spell before it: its last day and the position of its
    -- first row after it (a spell start closes the spell before; a citizen's last episode
    -- closes its own)
    select
        citizen_id,
        start_date,
        position,
        opens_spell,
        opens_course,
        latest_end,
        case when opens_spell then latest_end_before else latest_end end as closes_with,
        case when opens_spell then position else position + 1 end as first_after
    from marked
    where opens_spell or is_last

),

spells as (

    select
        citizen_id,
        start_date as first_day,
        coalesce(lead(closes_with) over in_order, latest_end) as last_day,
        coalesce(lead(first_after) over in_order, position + 1) - position as episodes,
        sum(opens_course::integer) over (in_order rows unbounded preceding) as course_no,
        opens_spell
    from boundaries
    window in_order as (partition by citizen_id order by position)

),

courses as (

    select
        citizen_id,
        course_no::integer as course_no,
        min(first_day) as first_day,
        max(last_day) as last_day,
        (max(last_day) - min(first_day) + 1)::integer as course_days,
        sum(last_day - first_day + 1)::integer as covered_days,
        sum(episodes)::integer as episodes,
        $reference_date between min(first_day) and max(last_day) as covers_reference_date
    from spells
    where opens_spell
    group by citizen_id, course_no

)

select * from courses
