-- marts.courses (a view): one row per citizen × course (forløb) of public support,
-- definitions §2. Parameters: $reference_date.
-- A course opens at each support episode marked `opens_course` in marts.episode_marks, and
-- takes the citizen's support episodes up to the next one. Its days covered are the union of
-- its episodes' days (a gap inside it does not count).
-- Why a view: marts.citizens reads the marks directly, so the run does not pay for these rows;
-- a caseworker's question about one citizen reads them in an instant.
-- Ties on start date: the running count takes tied episodes as one step (a range frame), so
-- they fall in the same course whichever of them the marks let open it.
with

episode_marks as (

    select * from marts.episode_marks

),

numbered as (

    select
        citizen_id,
        start_date,
        support_end,
        new_support_days,
        sum(opens_course::integer) over (
            partition by citizen_id
            order by start_date
            range between unbounded preceding and current row
        ) as course_no
    from episode_marks
    where support_end is not null

),

courses as (

    select
        citizen_id,
        course_no::integer as course_no,
        min(start_date) as first_day,
        max(support_end) as last_day,
        (max(support_end) - min(start_date) + 1)::integer as course_days,
        sum(new_support_days)::integer as covered_days,
        count(*)::integer as episodes,
        $reference_date between min(start_date) and max(support_end) as covers_reference_date
    from numbered
    group by citizen_id, course_no

)

select * from courses
