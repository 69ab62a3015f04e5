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
