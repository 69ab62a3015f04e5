-- quarantine.rows: one row per problem, both tables, in file and line order: what
-- quarantine.csv publishes (values are already CPR-masked in raw).
with citizen_problems as (
    select 'citizens' as table_name, * from quarantine.citizen_problems
),

episode_problems as (
    select 'episodes' as table_name, * from quarantine.episode_problems
),

problems as (
    select * from citizen_problems
    union all
    select * from episode_problems
)

select table_name, _file as file, _line as line, column_name, value, reason
from problems
order by table_name, file, line, column_name, reason
