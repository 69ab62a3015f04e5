-- marts.citizens: one row per staged citizen, definitions §1-§5: scope, age, course history,
-- time in M3, and the profile with the rule and the flags that made it; for an unreviewed
-- citizen in scope the model's profile (marts.predictions), its probability and reasons.
-- profile_source: rules (reviewed), model (the model's profile, probability at least
-- model_min_probability), uncertain (below it: no profile, kept out of the tables, listed for
-- review), unreviewed (no model could be trained, or out of scope).
-- Placeholders (base_profile, matched_flags in double braces): the rules' compiled CASE
-- expressions (`segment.py`), applied here to the predicted flags, so a model-assigned
-- citizen's base profile and matched flags come from the same rules file.
-- No parameters.
with

ruled as (

    select * from marts.citizens_ruled

),

predictions as (

    select * from marts.predictions

),

case_reviews as (

    select citizen_id, departments_involved, birth_year, municipality_code
    from staging.citizens

),

modelled as (

    -- the predicted flags (named as the flags) and the integer columns the rules may compare
    select
        predictions.*,
        case_reviews.departments_involved,
        case_reviews.birth_year,
        case_reviews.municipality_code
    from predictions
    join case_reviews using (citizen_id)

),

model_profiles as (

    select
        *,
        case when profile_source = 'model' then profile end as "rule",
        case when profile_source = 'model' then {{ base_profile }} end as model_base_profile
    from modelled

),

model_flags as (

    select
        citizen_id,
        profile_source as model_source,
        profile_probability as model_probability,
        top_reasons as model_reasons,
        misuse_any as model_misuse,
        "rule",
        model_base_profile,
        case when "rule" is not null then {{ matched_flags }} end as model_matched_flags
    from model_profiles

),

combined as (

    select
        ruled.* exclude (profile, base_profile, "rule", matched_flags, profile_source,
                         profile_probability, tabulated),
        coalesce(ruled.profile, model_flags."rule") as profile,
        coalesce(ruled.base_profile, model_flags.model_base_profile) as base_profile,
        coalesce(ruled."rule", model_flags."rule") as "rule",
        coalesce(ruled.matched_flags, model_flags.model_matched_flags) as matched_flags,
        case
            when ruled.profile_source = 'rules' then 'rules'
            when model_flags.model_source is not null then model_flags.model_source
            else 'unreviewed'
        end as profile_source,
        coalesce(ruled.profile_probability, model_flags.model_probability)
            as profile_probability,
        model_flags.model_reasons as top_reasons,
        model_flags.model_misuse
    from ruled
    left join model_flags using (citizen_id)

),

final as (

    select
        citizen_id,
        in_scope,
        profile,
        base_profile,
        "rule",
        matched_flags,
        profile_source,
        profile_probability,
        top_reasons,
        -- definitions §5: the citizens the tables count: in scope with a profile from the
        -- rules or the model; the uncertain and the unreviewed are counted apart
        coalesce(in_scope and profile is not null
                 and profile_source in ('rules', 'model'), false) as tabulated,
        reviewed,
        age,
        age_band,
        match_group_on_reference_date,
        match_group_source,
        courses,
        course_class,
        current_course_days,
        support_days_total,
        m3_stretches,
        m3_days,
        m3_band,
        -- a model-assigned citizen's misuse from the predicted flags
        case when profile_source = 'model' then model_misuse else misuse_any end as misuse_any,
        complex_case,
        episodes_after_reference
    from combined

)

select * from final
