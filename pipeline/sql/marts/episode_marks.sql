-- marts.episode_marks (a view): one row per staged episode that starts on or before the
-- reference date, marked for the merges of definitions §2 (courses) and §3 (M3 stretches).
-- Parameters: $reference_date, $course_gap_days, $support_excluded, $m3_groups.
-- Columns: `support_end` / `m3_end`, the episode's end clipped to the reference date (§7: an
-- ongoing episode runs to it), null when the episode is not support / not in an
-- M3-equivalent group; `opens_course` / `opens_stretch`, the episode starts more than
-- `course_gap_days` days (strictly between) after the latest end of the citizen's earlier
-- support / M3 episodes; `new_support_days`, the days it adds to the support days so far.
-- Why one model for both merges: one sort of the episodes (by citizen and start date) serves
-- both running maxima, and marts.citizens, marts.courses and marts.m3_stretches all read
-- these marks, so the merge rule is written once.
-- Ties on start date: the window takes tied episodes in some order. The first of them ends on
-- or after their common start (staging refuses an end before the start), so only it can
-- open a course or stretch; which one it is may differ between reads, but no count, day or
-- course built from the marks depends on it. `new_support_days` adds up to the same total in
-- any order that sorts by start date: everything before an episode started no later, so what
-- it already covers from the episode's start on is one run of days up to the latest end.
with

episodes as (

    select * from staging.episodes

),

clipped as (

    select
        citizen_id,
        start_date,
        case when not list_contains($support_excluded::varchar[], benefit)
            then least(coalesce(end_date, $reference_date), $reference_date)
        end as support_end,
        case when list_contains($m3_groups::varchar[], match_group)
            then least(coalesce(end_date, $reference_date), $reference_date)
        end as m3_end
    from episodes
    -- definitions §7: episodes starting after the reference date are ignored
    where start_date <= $reference_date

),

with_latest_ends as (

    -- max() skips nulls, so each maximum runs over its own kind of episode
    select
        *,
        max(support_end) over earlier as support_end_before,
        max(m3_end) over earlier as m3_end_before
    from clipped
    window earlier as (
        partition by citizen_id
        order by start_date
        rows between unbounded preceding and 1 preceding
    )

),

marked as (

    select
        citizen_id,
        start_date,
        support_end,
        m3_end,
        support_end is not null
            and coalesce(start_date - support_end_before > $course_gap_days + 1, true)
            as opens_course,
        m3_end is not null
            and coalesce(start_date - m3_end_before > $course_gap_days + 1, true)
            as opens_stretch,
        greatest(0, support_end - greatest(support_end_before, start_date - 1))::integer
            as new_support_days
    from with_latest_ends

)

select * from marked
