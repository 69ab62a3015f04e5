-- marts.courses: a citizen's courses are numbered 1, 2, ... in time order, each lies within
-- the reference date, and consecutive courses are separated by more than $course_gap_days
-- days (definitions §2); returns the courses breaking that.
with

courses as (

    select * from marts.courses

),

with_previous as (

    select
        *,
        lag(last_day) over (partition by citizen_id order by course_no) as previous_last_day,
        row_number() over (partition by citizen_id order by course_no) as position
    from courses

),

offending as (

    select *
    from with_previous
    where course_no <> position
       or first_day > last_day
       or last_day > $reference_date
       or course_days <> last_day - first_day + 1
       or covered_days not between 1 and course_days
       or first_day - previous_last_day <= $course_gap_days + 1

)

select * from offending
