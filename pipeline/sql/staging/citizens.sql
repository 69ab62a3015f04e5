-- staging.citizens: one row per valid citizen, typed (rows with any problem are in
-- quarantine.citizen_problems). Flags not recorded count as false; `reviewed` defaults to
-- true (data contract).
with raw_citizens as (
    select * from raw.citizens
),

problem_rows as (
    select distinct _file, _line from quarantine.citizen_problems
),

valid as (
    select r.*
    from raw_citizens as r
    anti join problem_rows as p on r._file = p._file and r._line = p._line
),

typed as (
    select
        trim(citizen_id) as citizen_id,
        m3_int(birth_year)::integer as birth_year,
        m3_sex(sex) as sex,
        coalesce(m3_int(municipality_code), $municipality_code)::integer as municipality_code,
        m3_match_group(match_group) as match_group,
        coalesce(m3_bool(reviewed), true) as reviewed,
        coalesce(m3_bool(columns('^(physical_illness|psych_diagnosis|psych_undiagnosed|alcohol|soft_drugs|hard_drugs|potential_m2|focus_.*|motivation_.*|barrier_.*)$')), false),
        m3_int(departments_involved)::integer as departments_involved,
        m3_text(notes) as notes,
        _file,
        _line
    from valid
)

select * from typed
