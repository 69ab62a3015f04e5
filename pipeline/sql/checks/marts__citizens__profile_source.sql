-- marts.citizens: a reviewed citizen has a profile from the rules; a model-assigned one
-- (unreviewed) has the model's profile, rule and probability; an uncertain or unreviewed one
-- has no profile, base profile, rule or flags (definitions §1: never guessed); returns the
-- others.
with

marts_citizens as (

    select * from marts.citizens

),

offending as (

    select citizen_id, reviewed, profile_source, profile, base_profile, "rule"
    from marts_citizens
    where (
        profile_source = 'rules'
        and not (
            reviewed
            and profile is not null
            and base_profile is not null
            and "rule" is not null
            and matched_flags is not null
        )
    )
    or (
        profile_source = 'model'
        and not (
            not reviewed
            and profile is not null
            and base_profile is not null
            and "rule" is not null
            and profile_probability is not null
        )
    )
    or (
        profile_source in ('uncertain', 'unreviewed')
        and not (
            not reviewed
            and profile is null
            and base_profile is null
            and "rule" is null
            and matched_flags is null
        )
    )
    or profile_source is null
    or profile_source not in ('rules', 'model', 'uncertain', 'unreviewed')

)

select * from offending
