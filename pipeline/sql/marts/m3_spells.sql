-- marts.m3_spells (a view): definitions §8.3. Per citizen, the latest M3 stretch (§3) that
-- started within $survival_window_days before the reference date: its duration in days and
-- whether it is known to have ended (the event) or is censored.
-- Parameters: $reference_date, $survival_window_days, $course_gap_days.
with

stretches as (

    select * from marts.m3_stretches

),

latest as (

    select *
    from stretches
    where first_day >= $reference_date::date - $survival_window_days::integer
    qualify row_number() over (partition by citizen_id order by first_day desc) = 1

)

select
    citizen_id,
    first_day,
    last_day,
    stretch_days as duration_days,
    -- ended: the gap after the last day is already longer than a merge allows
    ($reference_date::date - last_day) > $course_gap_days as left_m3
from latest
