-- marts.citizens_ruled: one row per staged citizen, definitions §1-§5: scope, age, course history,
-- time in M3, and the profile the rules give a reviewed citizen (marts.citizens adds the model's).
-- Parameters: $reference_date, $long_course_days, $m3_groups, $scope, $age_bands,
-- $age_band_codes, $m3_band_days, $complex_case_departments.
-- Placeholders (rule, base_profile, matched_flags in double braces): `segment.py` fills them with
-- CASE expressions compiled by `pipeline.rules` from the validated rule AST (whitelisted
-- column names, codes matching [a-z][a-z0-9_]*). That and the views' parameters written in as
-- literals (`warehouse.create_view_as`) are the places this project composes SQL text, and
-- nothing in them comes from data.
with

citizens as (

    select * from staging.citizens

),

episodes as not materialized (

    select * from staging.episodes

),

episode_marks as (

    select * from marts.episode_marks

),

histories as (

    -- definitions §2-§3 from the marks, without the course rows: a citizen's last course
    -- holds their latest support end, and a course covers the reference date exactly when
    -- that end is the reference date (ends are clipped to it); the same for M3 stretches.
    -- With exactly one course, its length is from the first support start to the latest end.
    select
        citizen_id,
        count_if(opens_course)::integer as courses,
        min(start_date) filter (where support_end is not null) as first_support_day,
        max(support_end) as last_support_day,
        max(start_date) filter (where opens_course) as last_course_start,
        sum(new_support_days)::integer as support_days_total,
        count_if(opens_stretch)::integer as m3_stretches,
        max(m3_end) as last_m3_day,
        max(start_date) filter (where opens_stretch) as last_stretch_start
    from episode_marks
    group by citizen_id

),

covering_episode_group as (

    -- definitions §3: the group of the episode covering the reference date, the one that
    -- started last; an episode without a recorded group says nothing and is passed over.
    -- Ties on start date: the ongoing / later-ending episode, then the later row of the export
    -- (`_line`: the contract allows one file per table, so it orders the rows on its own).
    select
        citizen_id,
        match_group
    from episodes
    where start_date <= $reference_date
      and coalesce(end_date >= $reference_date, true)
      and match_group is not null
    qualify row_number() over (
        partition by citizen_id
        order by start_date desc, end_date desc nulls first, _line desc
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
        coalesce(histories.courses, 0) as courses,
        case when histories.courses = 1
            then histories.last_support_day - histories.first_support_day + 1
        end as only_course_days,
        case when histories.last_support_day = $reference_date
            then $reference_date - histories.last_course_start + 1
            else 0
        end::integer as current_course_days,
        coalesce(histories.support_days_total, 0) as support_days_total,
        coalesce(histories.m3_stretches, 0) as m3_stretches,
        case when histories.last_m3_day = $reference_date
            then $reference_date - histories.last_stretch_start + 1
            else 0
        end::integer as m3_days,
        coalesce(episodes_after_reference.episodes_after_reference, 0)
            as episodes_after_reference
    from citizens
    left join covering_episode_group using (citizen_id)
    left join histories using (citizen_id)
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
            when only_course_days > $long_course_days then 'long_continuous'
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

tabulated as (

    select
        *,
        -- definitions §5: the citizens the tables count, in scope with a profile; the
        -- unreviewed are counted apart in the headline. One column, so every table, check
        -- and headline count takes the same citizens
        coalesce(in_scope and profile is not null and profile_source <> 'unreviewed', false)
            as tabulated
    from profiled

),

final as (

    -- what segmentation derives; the case review's flags stay in staging.citizens (joined on
    -- citizen_id where a table counts them): copying 30-odd flag columns here would cost a
    -- fifth of the stage at 1,000,000 citizens
    select
        citizen_id,
        in_scope,
        profile,
        base_profile,
        "rule",
        matched_flags,
        profile_source,
        profile_probability,
        tabulated,
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
        misuse_any,
        complex_case,
        episodes_after_reference
    from tabulated

)

select * from final
