-- marts.profile_groups: the citizens that the tables of definitions §5 count, counted once.
-- Grain: one row per profile × base_profile × course_class × age_band × m3_band among the
-- in-scope citizens with a profile (§1: unreviewed citizens are kept out); a null in a
-- dimension is a group of its own.
-- Columns: `n` (citizens), and per case-review flag that a table ticks the citizens with it
-- set, named after the table column it fills; `misuse_no` (none of the misuse kinds) and
-- `motivation_not_stated` (no motivation flag set, data contract) are derived. A flag or
-- condition that is null is not counted, as in the per-citizen counts the tables made before.
-- Why: the table_* models read this small table (a few hundred rows; the flag counts also in
-- long form, marts.profile_group_flags) instead of each scanning marts.citizens, so the
-- tables cost one scan of the citizens.
-- No parameters.
with

citizens as (

    select * from marts.citizens

),

case_reviews as (

    -- recorded flags, or the model's for a model-assigned citizen (issue 15)
    select * from marts.case_flags

),

tabulated as (

    -- the flags come from the case review (marts.citizens keeps only what segment derives)
    select citizens.*, case_reviews.* exclude (citizen_id, reviewed)
    from citizens
    join case_reviews using (citizen_id)
    where citizens.tabulated

),

counted as (

    select
        profile,
        base_profile,
        course_class,
        age_band,
        m3_band,
        count(*) as n,
        -- case_focus
        count_if(focus_ordinary_work)::bigint as focus_ordinary_work,
        count_if(focus_upskilling)::bigint as focus_upskilling,
        count_if(focus_support_scheme)::bigint as focus_support_scheme,
        count_if(focus_activation)::bigint as focus_activation,
        count_if(focus_physical_treatment)::bigint as focus_physical_treatment,
        count_if(focus_psych_treatment)::bigint as focus_psych_treatment,
        count_if(focus_misuse_treatment)::bigint as focus_misuse_treatment,
        count_if(focus_rest)::bigint as focus_rest,
        count_if(focus_pension_case)::bigint as focus_pension_case,
        -- misuse
        count_if(alcohol)::bigint as alcohol,
        count_if(soft_drugs)::bigint as soft_drugs,
        count_if(hard_drugs)::bigint as hard_drugs,
        count_if(not misuse_any)::bigint as misuse_no,
        -- motivation
        count_if(motivation_overcomes_barriers)::bigint as motivation_overcomes_barriers,
        count_if(motivation_work)::bigint as motivation_work,
        count_if(motivation_education)::bigint as motivation_education,
        count_if(motivation_none)::bigint as motivation_none,
        count_if(motivation_pension)::bigint as motivation_pension,
        count_if(
            not (motivation_overcomes_barriers or motivation_work or motivation_education
                 or motivation_none or motivation_pension)
        )::bigint as motivation_not_stated,
        -- barriers
        count_if(barrier_housing)::bigint as barrier_housing,
        count_if(barrier_economy)::bigint as barrier_economy,
        count_if(barrier_transport)::bigint as barrier_transport,
        count_if(barrier_children)::bigint as barrier_children,
        count_if(barrier_language)::bigint as barrier_language,
        count_if(barrier_isolation)::bigint as barrier_isolation
    from tabulated
    group by profile, base_profile, course_class, age_band, m3_band

)

select * from counted
