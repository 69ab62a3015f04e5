-- staging.episodes: one row per valid episode (spell), typed. end_date NULL = ongoing.
with raw_episodes as (
    select * from raw.episodes
),

problem_rows as (
    select distinct _file, _line from quarantine.episode_problems
),

valid as (
    select e.*
    from raw_episodes as e
    anti join problem_rows as p on e._file = p._file and e._line = p._line
),

typed as (
    select
        trim(citizen_id) as citizen_id,
        m3_date(start_date) as start_date,
        m3_date(end_date) as end_date,
        m3_benefit(benefit) as benefit,
        m3_match_group(match_group) as match_group,
        _file,
        _line
    from valid
)

select * from typed
