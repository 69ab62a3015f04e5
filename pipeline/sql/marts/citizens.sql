-- marts.citizens: one row per staged citizen, definitions §1-§5.
-- Parameters: $reference_date, $long_course_days, $m3_groups, $scope, $age_bands,
-- $age_band_codes, $m3_band_days, $complex_case_departments.
-- Placeholders (rule, base_profile, matched_flags in double braces): `segment.py` fills them with
-- CASE expressions compiled by `pipeline.rules` from the validated rule AST (whitelisted
-- column names, codes matching [a-z][a-z0-9_]*). That is the one place this project composes
-- SQL text, and nothing in it comes from data; every value from data or config is a parameter.
with

citizens as (

    select * from staging.citizens

),

episodes as (

    select * from staging.episodes

),

courses as (

    select * from marts.courses

),

m3_stretches as (

    select * from marts.m3_stretches

),

course_summary as (

    select
        citizen_id,
        count(*)::integer as courses,
        max(course_days)::integer as longest_course_days,
        coalesce(max(course_days) filter (where covers_reference_date), 0)::integer
            as current_course_days,
        sum(covered_days)::integer as support_days_total
    from courses
    group by citizen_id

),

m3_summary as (

    -- definitions §3: the length of the M3 stretch covering the reference date (stretches do
    -- not overlap, so there is at most one), else 0 after the join
    select
        citizen_id,
        stretch_days as m3_days
    from m3_stretches
    where covers_reference_date

),

covering_episode_group as (

    -- definitions §3: the group of the episode covering the reference date, the one that
    -- started last; an episode without a recorded group says nothing and is passed over.
    -- Ties on start date: the ongoing / later-ending episode, then the later row of the export.
    select
        citizen_id,
        match_group
    from episodes
    where start_date <= $reference_date
      and coalesce(end_date >= $reference_date, true)
      and match_group is not null
    qualify row_number() over (
        partition by citizen_id
        order by start_date desc, end_date desc nulls first, _file desc, _line desc
    ) = 1

),

episodes_after_reference as (

    -- definitions §7: ignored for this run, counted
    select
        citizen_id,
        count(*)::integer as episodes_after_reference
    from episodes
    where start_date > $reference_date
    group by citizen_id

),

joined as (

    select
        citizens.*,
        coalesce(citizens.match_group, covering_episode_group.match_group)
            as match_group_on_reference_date,
        case
            when citizens.match_group is not null then 'citizens'
            when covering_episode_group.match_group is not null then 'episode'
        end as match_group_source,
        coalesce(course_summary.courses, 0) as courses,
        course_summary.longest_course_days,
        coalesce(course_summary.current_course_days, 0) as current_course_days,
        coalesce(course_summary.support_days_total, 0) as support_days_total,
        coalesce(m3_summary.m3_days, 0) as m3_days,
        coalesce(episodes_after_reference.episodes_after_reference, 0)
            as episodes_after_reference
    from citizens
    left join covering_episode_group using (citizen_id)
    left join course_summary using (citizen_id)
    left join m3_summary using (citizen_id)
    left join episodes_after_reference using (citizen_id)

),

measured as (

    select
        *,
        $scope = 'all'
            or coalesce(list_contains($m3_groups::varchar[], match_group_on_reference_date), false)
            as in_scope,
        -- definitions §4: age = reference year - birth year
        (year($reference_date) - birth_year)::integer as age,
        case
            when courses = 0 then 'no_history'
            when courses >= 2 then 'several_separate'
            when longest_course_days > $long_course_days then 'long_continuous'
            else 'short_continuous'
        end as course_class,
        case
            when m3_days = 0 then 'not_in_m3'
            when m3_days < $m3_band_days[1] then 'under_1y'
            when m3_days < $m3_band_days[2] then '1_to_2y'
            else '2y_plus'
        end as m3_band,
        alcohol or soft_drugs or hard_drugs as misuse_any,
        coalesce(departments_involved >= $complex_case_departments, false) as complex_case
    from joined

),

banded as (

    select
        *,
        case
            when age is not null
                then ($age_band_codes::varchar[])[
                    1 + len(list_filter($age_bands::integer[], lambda b: b <= age))
                ]
        end as age_band
    from measured

),

ruled as (

    -- definitions §1: flags of unreviewed citizens are not trusted, so no rule is applied
    select
        *,
        case when reviewed then {{ rule }} end as "rule",
        case when reviewed then {{ base_profile }} end as base_profile
    from banded

),

profiled as (

    select
        *,
        "rule" as profile,
        {{ matched_flags }} as matched_flags,
        case when reviewed then 'rules' else 'unreviewed' end as profile_source,
        null::double as profile_probability
    from ruled

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
        birth_year,
        age,
        age_band,
        sex,
        municipality_code,
        match_group,
        match_group_on_reference_date,
        match_group_source,
        courses,
        course_class,
        current_course_days,
        support_days_total,
        m3_days,
        m3_band,
        misuse_any,
        complex_case,
        departments_involved,
        episodes_after_reference,
        reviewed,
        physical_illness,
        psych_diagnosis,
        psych_undiagnosed,
        alcohol,
        soft_drugs,
        hard_drugs,
        potential_m2,
        focus_ordinary_work,
        focus_upskilling,
        focus_support_scheme,
        focus_activation,
        focus_physical_treatment,
        focus_psych_treatment,
        focus_misuse_treatment,
        focus_rest,
        focus_pension_case,
        motivation_overcomes_barriers,
        motivation_work,
        motivation_education,
        motivation_none,
        motivation_pension,
        barrier_housing,
        barrier_economy,
        barrier_transport,
        barrier_children,
        barrier_language,
        barrier_isolation
    from profiled

)

select * from final
