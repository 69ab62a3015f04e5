-- marts.worklist: the re-review worklist (issue 17; internal: pseudonymous ids, never
-- published): one row per in-scope citizen and worklist reason that holds, with the reason's
-- priority and the facts behind it (time in M3, course, departments, focus, motivation, how
-- the profile was made).
-- Parameters: $reason_codes, $reason_priorities (the worklist file's, in its order).
-- Placeholders (reasons, focus, motivation in double braces): `pipeline.worklist` fills them
-- with list expressions compiled by `pipeline.rules` from the validated worklist file
-- (whitelisted column names, codes matching [a-z0-9_]+) and the vocabulary's flag names.
with

facts as (

    -- what segment derived, with the case review's flags and departments (never the notes)
    select
        derived.citizen_id,
        derived.profile,
        derived.base_profile,
        derived."rule",
        derived.matched_flags,
        derived.profile_source,
        derived.profile_probability,
        derived.reviewed,
        derived.age,
        derived.course_class,
        derived.courses,
        derived.current_course_days,
        derived.support_days_total,
        derived.m3_days,
        derived.m3_band,
        derived.complex_case,
        reviews.* exclude (citizen_id, reviewed, sex, match_group, notes, _file, _line)
    from marts.citizens as derived
    join staging.citizens as reviews using (citizen_id)
    where derived.in_scope

),

listed as (

    select
        *,
        {{ reasons }} as reasons
    from facts

),

exploded as (

    select
        *,
        unnest(reasons) as reason
    from listed

),

final as (

    select
        citizen_id,
        reason,
        ($reason_priorities::integer[])[list_position($reason_codes::varchar[], reason)]
            as priority,
        profile,
        profile_source,
        profile_probability,
        "rule",
        matched_flags,
        m3_days,
        m3_band,
        course_class,
        current_course_days,
        departments_involved,
        complex_case,
        {{ focus }} as focus,
        {{ motivation }} as motivation
    from exploded

)

select * from final
