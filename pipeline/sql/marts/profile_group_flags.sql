-- marts.profile_group_flags: the flag counts of marts.profile_groups in long form, for the
-- multi-response tables of definitions §5 (case_focus, misuse, motivation, barriers).
-- Grain: one row per profile group × flag; `flag` is the name of the count in
-- marts.profile_groups (the table column it fills), `n` the citizens of the group with it set.
-- Why: a table then takes its ticks by matching its column codes to `flag`, the way the
-- other tables match them to a group's course class, age band or M3 band; unpivoting the
-- few hundred groups costs nothing, unlike one row per citizen.
-- No parameters.
with

profile_groups as (

    select * from marts.profile_groups

),

unpivoted as (

    -- every column but the group's dimensions and its citizen count is a flag count
    unpivot (select * exclude (n) from profile_groups)
    on columns(* exclude (profile, base_profile, course_class, age_band, m3_band))
    into name flag value n

)

select * from unpivoted
