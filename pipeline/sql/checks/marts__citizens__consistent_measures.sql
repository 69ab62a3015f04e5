-- marts.citizens: the per-citizen measures agree with each other (definitions §2-§3);
-- returns the citizens where they do not.
with

marts_citizens as (

    select * from marts.citizens

),

offending as (

    select
        citizen_id, courses, course_class, current_course_days, support_days_total,
        m3_days, m3_band
    from marts_citizens
    where (course_class = 'no_history') <> (courses = 0)
       or (course_class = 'no_history') <> (support_days_total = 0)
       or current_course_days < 0
       or (m3_band = 'not_in_m3') <> (m3_days = 0)
       or course_class is null
       or m3_band is null
       or in_scope is null

)

select * from offending
