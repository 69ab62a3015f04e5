-- marts.courses: one row per citizen × course (forløb) of public support, definitions §2.
-- Parameters: $reference_date, $course_gap_days, $support_excluded.
-- Gaps and islands: episodes in start order; an episode opens a new course when it starts
-- more than `course_gap_days` days after the latest end so far (gap = days strictly between,
-- so `start - latest_end <= gap + 1` continues the course). A second, finer island (gap 0:
-- overlapping or touching) gives the distinct days covered, which nest inside the course.
-- The window order ends in `_line`, unique within the one episodes file (data contract), so
-- both windows see tied spells in the same order: a row's course number then never depends
-- on how the sort broke a tie. (An integer key: a text key would widen every sort row.)
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
        least(coalesce(end_date, $reference_date), $reference_date) as end_date,
        _line
    from episodes
    where start_date <= $reference_date
      and not list_contains($support_excluded::varchar[], benefit)

),

with_latest_end as (

    select
        *,
        max(end_date) over (
            partition by citizen_id
            order by start_date, end_date, _line
            rows between unbounded preceding and 1 preceding
        ) as latest_end_before
    from support_episodes

),

marked as (

    select
        *,
        coalesce(start_date - latest_end_before > $course_gap_days + 1, true) as opens_course,
        coalesce(start_date - latest_end_before > 1, true) as opens_spell
    from with_latest_end

),

numbered as (

    select
        *,
        sum(opens_course::integer) over (
            partition by citizen_id
            order by start_date, end_date, _line
            rows unbounded preceding
        ) as course_no,
        sum(opens_spell::integer) over (
            partition by citizen_id
            order by start_date, end_date, _line
            rows unbounded preceding
        ) as spell_no
    from marked

),

spells as (

    select
        citizen_id,
        course_no,
        spell_no,
        min(start_date) as first_day,
        max(end_date) as last_day,
        count(*) as episodes
    from numbered
    group by citizen_id, course_no, spell_no

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
    group by citizen_id, course_no

)

select * from courses
