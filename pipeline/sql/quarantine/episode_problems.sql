-- quarantine.episode_problems: one row per problem in a row of raw.episodes. An episode
-- whose citizen did not load (unknown, duplicated or itself quarantined) is
-- `unknown_citizen`: it cannot be attributed to anyone.
with raw_episodes as (
    select * from raw.episodes
),

citizens as (
    select citizen_id from staging.citizens
),

scalar_checks as (
    select _file, _line, unnest([
        {column_name: 'citizen_id', value: citizen_id, reason: case
            when m3_blank(citizen_id) is null then 'missing_required' end},
        {column_name: 'start_date', value: start_date, reason: case
            when m3_blank(start_date) is null then 'missing_required'
            when m3_date(start_date) is null then 'unparseable_date' end},
        {column_name: 'end_date', value: end_date, reason: case
            when m3_blank(end_date) is null then null
            when m3_date(end_date) is null then 'unparseable_date'
            -- data contract: reported on the column end_date
            when m3_date(end_date) < m3_date(start_date) then 'end_before_start' end},
        {column_name: 'benefit', value: benefit, reason: case
            when m3_blank(benefit) is null then 'missing_required'
            when m3_benefit(benefit) is null then 'out_of_domain' end},
        {column_name: 'match_group', value: match_group, reason: case
            when m3_blank(match_group) is not null and m3_match_group(match_group) is null
                then 'out_of_domain' end}
    ], recursive := true)
    from raw_episodes
),

unknown_citizens as (
    select e._file, e._line, 'citizen_id' as column_name, e.citizen_id as value,
        'unknown_citizen' as reason
    from raw_episodes as e
    anti join citizens as c on trim(e.citizen_id) = c.citizen_id
    where m3_blank(e.citizen_id) is not null
),

problems as (
    select * from scalar_checks where reason is not null
    union all
    select * from unknown_citizens
)

select * from problems
