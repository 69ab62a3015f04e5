-- quarantine.episode_problems: one row per problem in a row of raw.episodes. An episode
-- whose citizen did not load (unknown, duplicated or itself quarantined) is
-- `unknown_citizen`: it cannot be attributed to anyone. Each value is parsed once; only
-- rows with a problem are unnested into problem lines.
with raw_episodes as (
    select * from raw.episodes
),

citizens as (
    select citizen_id from staging.citizens
),

parsed as (
    select
        e._file, e._line, e.citizen_id, e.start_date, e.end_date, e.benefit, e.match_group,
        m3_blank(e.citizen_id) is null as id_missing,
        c.citizen_id is null as citizen_unknown,
        m3_date(e.start_date) as start_d,
        m3_date(e.end_date) as end_d,
        m3_benefit(e.benefit) as benefit_code,
        m3_match_group(e.match_group) as group_code
    from raw_episodes as e
    left join citizens as c on trim(e.citizen_id) = c.citizen_id
),

flagged as (
    select *
    from parsed
    where id_missing
        or citizen_unknown
        or start_d is null
        or (end_d is null and m3_blank(end_date) is not null)
        or end_d < start_d
        or benefit_code is null
        or (group_code is null and m3_blank(match_group) is not null)
),

checks as (
    select _file, _line, unnest(list_filter([
        {column_name: 'citizen_id', value: citizen_id, reason: case
            when id_missing then 'missing_required'
            when citizen_unknown then 'unknown_citizen' end},
        {column_name: 'start_date', value: start_date, reason: case
            when m3_blank(start_date) is null then 'missing_required'
            when start_d is null then 'unparseable_date' end},
        {column_name: 'end_date', value: end_date, reason: case
            when m3_blank(end_date) is null then null
            when end_d is null then 'unparseable_date'
            -- data contract: reported on the column end_date
            when end_d < start_d then 'end_before_start' end},
        {column_name: 'benefit', value: benefit, reason: case
            when m3_blank(benefit) is null then 'missing_required'
            when benefit_code is null then 'out_of_domain' end},
        {column_name: 'match_group', value: match_group, reason: case
            when m3_blank(match_group) is not null and group_code is null
                then 'out_of_domain' end}
    ], lambda c: c.reason is not null), recursive := true)
    from flagged
)

select * from checks
