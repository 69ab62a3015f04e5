"""The floor for segmentation (an anchor of `make bench`): one window over the episodes,
merging support spells into courses, counted per citizen (definitions §2). Parameters
$reference_date, $course_gap_days, $support_excluded; reads the warehouse's
`staging.episodes`.

A module of its own, without pandas: the bench step that times it must not pay for importing
pandas (about 1.3 s here), which the segment step it is compared with does not import.
"""

bare_duckdb_courses_sql = """
select
    citizen_id,
    count_if(opens_course) as courses
from (
    select
        citizen_id,
        coalesce(
            start_date - max(least(coalesce(end_date, $reference_date), $reference_date)) over (
                partition by citizen_id
                order by start_date
                rows between unbounded preceding and 1 preceding
            ) > $course_gap_days + 1,
            true
        ) as opens_course
    from staging.episodes
    where start_date <= $reference_date
      and not list_contains($support_excluded::varchar[], benefit)
)
group by citizen_id
"""

# Not an anchor an issue names: what any implementation of definitions §2-§3 has to do at
# least, recorded beside the goal so the gap to it can be read. One window carrying both
# running maxima (support spells and M3 spells), then one aggregation per citizen of what
# the measures need (courses, stretches, support days, the last ends); no joins, no rules.
# Written out here, not read from pipeline/sql/marts/episode_marks.sql, which makes the same
# merges: a figure to compare with must not move with the code it measures.
# Extra parameter: $m3_groups.
bare_duckdb_both_merges_sql = """
select
    citizen_id,
    count_if(support_end is not null and coalesce(
        start_date - support_end_before > $course_gap_days + 1, true)) as courses,
    sum(greatest(0, support_end - greatest(support_end_before, start_date - 1))) as support_days,
    max(support_end) as last_support_day,
    count_if(m3_end is not null and coalesce(
        start_date - m3_end_before > $course_gap_days + 1, true)) as m3_stretches,
    max(m3_end) as last_m3_day
from (
    select
        *,
        max(support_end) over earlier as support_end_before,
        max(m3_end) over earlier as m3_end_before
    from (
        select
            citizen_id,
            start_date,
            case when not list_contains($support_excluded::varchar[], benefit)
                then least(coalesce(end_date, $reference_date), $reference_date)
            end as support_end,
            case when list_contains($m3_groups::varchar[], match_group)
                then least(coalesce(end_date, $reference_date), $reference_date)
            end as m3_end
        from staging.episodes
        where start_date <= $reference_date
    )
    window earlier as (
        partition by citizen_id
        order by start_date
        rows between unbounded preceding and 1 preceding
    )
)
group by citizen_id
"""
