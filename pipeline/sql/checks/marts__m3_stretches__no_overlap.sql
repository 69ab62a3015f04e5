-- marts.m3_stretches: a citizen's stretches are numbered 1, 2, ... in time order, each lies
-- within the reference date, and consecutive stretches are separated by more than
-- $course_gap_days days (definitions §3); returns the stretches breaking that.
with

m3_stretches as (

    select * from marts.m3_stretches

),

with_previous as (

    select
        *,
        lag(last_day) over (partition by citizen_id order by stretch_no) as previous_last_day,
        row_number() over (partition by citizen_id order by stretch_no) as position
    from m3_stretches

),

offending as (

    select *
    from with_previous
    where stretch_no <> position
       or first_day > last_day
       or last_day > $reference_date
       or stretch_days <> last_day - first_day + 1
       or first_day - previous_last_day <= $course_gap_days + 1

)

select * from offending
