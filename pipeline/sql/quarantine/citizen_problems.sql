-- quarantine.citizen_problems: one row per problem in a row of raw.citizens
-- (data contract, *Bad input*: a row with several problems has one line per problem).
-- Each value is parsed once; only rows with a problem are unnested into problem lines,
-- so a clean export costs one scan.
-- `not materialized`: the steps below read raw_citizens four times, each a few columns;
-- DuckDB would otherwise copy every column of every row (notes included) into memory first.
with raw_citizens as not materialized (
    select * from raw.citizens
),

parsed as (
    select
        _file, _line, citizen_id, birth_year, sex, municipality_code, match_group,
        departments_involved,
        m3_int(birth_year) as birth_year_int,
        m3_int(municipality_code) as municipality_int,
        m3_int(departments_involved) as departments_int
    from raw_citizens
),

flagged as (
    select *
    from parsed
    where m3_blank(citizen_id) is null
        or birth_year_int is null
        or birth_year_int not between 1900 and $reference_year - 15
        or (m3_blank(sex) is not null and m3_sex(sex) is null)
        or (m3_blank(municipality_code) is not null
            and coalesce(municipality_int not between 101 and 999, true))
        or (m3_blank(match_group) is not null and m3_match_group(match_group) is null)
        or (m3_blank(departments_involved) is not null
            and coalesce(departments_int not between 0 and 2147483647, true))
),

scalar_checks as (
    select _file, _line, unnest(list_filter([
        {column_name: 'citizen_id', value: citizen_id, reason: case
            when m3_blank(citizen_id) is null then 'missing_required' end},
        {column_name: 'birth_year', value: birth_year, reason: case
            when m3_blank(birth_year) is null then 'missing_required'
            when birth_year_int is null then 'unparseable_integer'
            when birth_year_int not between 1900 and $reference_year - 15
                then 'out_of_domain' end},
        {column_name: 'sex', value: sex, reason: case
            when m3_blank(sex) is not null and m3_sex(sex) is null then 'out_of_domain' end},
        {column_name: 'municipality_code', value: municipality_code, reason: case
            when m3_blank(municipality_code) is null then null
            when municipality_int is null then 'unparseable_integer'
            when municipality_int not between 101 and 999 then 'out_of_domain' end},
        {column_name: 'match_group', value: match_group, reason: case
            when m3_blank(match_group) is not null and m3_match_group(match_group) is null
                then 'out_of_domain' end},
        {column_name: 'departments_involved', value: departments_involved, reason: case
            when m3_blank(departments_involved) is null then null
            when departments_int is null then 'unparseable_integer'
            -- staging stores an integer: a count beyond its range is no count of departments
            when departments_int not between 0 and 2147483647 then 'out_of_domain' end}
    ], lambda c: c.reason is not null), recursive := true)
    from flagged
),

-- the boolean columns: reviewed and every flag (same pattern as staging.citizens)
boolean_cell_is_bad as (
    select
        _file, _line,
        m3_blank(columns('^(reviewed|physical_illness|psych_diagnosis|psych_undiagnosed|alcohol|soft_drugs|hard_drugs|potential_m2|focus_.*|motivation_.*|barrier_.*)$')) is not null
        and m3_bool(columns('^(reviewed|physical_illness|psych_diagnosis|psych_undiagnosed|alcohol|soft_drugs|hard_drugs|potential_m2|focus_.*|motivation_.*|barrier_.*)$')) is null
    from raw_citizens
),

rows_with_bad_booleans as (
    select _file, _line
    from boolean_cell_is_bad
    where greatest(*columns(* exclude (_file, _line)))
),

boolean_cells as (
    unpivot (
        select r._file, r._line, columns('^(reviewed|physical_illness|psych_diagnosis|psych_undiagnosed|alcohol|soft_drugs|hard_drugs|potential_m2|focus_.*|motivation_.*|barrier_.*)$')
        from raw_citizens as r
        semi join rows_with_bad_booleans as b on r._file = b._file and r._line = b._line
    )
    on columns(* exclude (_file, _line))
    into name column_name value value
),

boolean_checks as (
    select _file, _line, column_name, value, 'out_of_domain' as reason
    from boolean_cells
    where m3_blank(value) is not null and m3_bool(value) is null
),

duplicate_ids as (
    select trim(citizen_id) as citizen_id
    from raw_citizens
    where m3_blank(citizen_id) is not null
    group by 1
    having count(*) > 1
),

duplicate_checks as (
    select r._file, r._line, 'citizen_id' as column_name, r.citizen_id as value,
        'duplicate_id' as reason
    from raw_citizens as r
    inner join duplicate_ids as d on trim(r.citizen_id) = d.citizen_id
),

problems as (
    select * from scalar_checks
    union all
    select * from boolean_checks
    union all
    select * from duplicate_checks
)

select * from problems
