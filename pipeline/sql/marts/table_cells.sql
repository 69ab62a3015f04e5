-- marts.table_cells: every cell of every table of definitions §5, totals included, with its
-- unsuppressed count and share. Grain: one row per table × row × column. Internal: the
-- published numbers are in marts.published_cells.
-- Why one model for all tables: a table differs from the others only in its rows, its columns
-- and which profile groups count in each (marts.table_<id>, sparse); the grid with its zeros,
-- the total column, the total row and the shares are the same steps for every table.
-- Share (a reading where §5 is silent): a cell's share of its row total (within a profile);
-- a total-column cell's share of the grand total (the profile's share of all citizens).
-- Parameters: $table_ids, $table_row_dims, $table_multi_response (the tables, in report
-- order). The profiles and their order come from marts.profiles.
with

profile_groups as (

    -- the tabulated citizens (in scope, with a profile), counted by group
    select * from marts.profile_groups

),

tables as (

    -- definitions §5, in report order (pipeline/vocabulary.py's TABLES). row_dim names the
    -- rows: their codes and the citizens in each are taken here, so it must be what
    -- marts.table_<id> counts by. profile_distribution has no model: its one column is the
    -- total column of every table
    select
        unnest($table_ids::varchar[]) as table_id,
        unnest(range(1, len($table_ids::varchar[]) + 1)) as table_order,
        unnest($table_row_dims::varchar[]) as row_dim,
        unnest($table_multi_response::boolean[]) as multi_response

),

table_counts as (

    -- sparse: a cell may have no row, and a column that no group counts in has one row with
    -- no `row`. By name: only the tables with a column shown only when non-zero say which.
    -- The placeholder is the union of every marts.table_<id> of the registry, each with its
    -- table_id
    {{ table_counts }}

),

profiles as (

    select * from marts.profiles

),

row_codes as (

    -- the profiles in depth order (the sea figure: nearest the labour market first), ties
    -- in the rules' precedence; the base profiles are the profiles that are one, in the
    -- same order
    select
        'profile' as row_dim,
        code as "row",
        row_number() over (order by depth, precedence) as row_order
    from profiles
    union all
    select
        'base_profile' as row_dim,
        code as "row",
        row_number() over (order by depth, precedence) as row_order
    from profiles
    where base_precedence is not null

),

col_codes as (

    select distinct
        table_id,
        col,
        col_order,
        coalesce(shown_only_when_non_zero, false) as shown_only_when_non_zero
    from table_counts

),

members as (

    -- the citizens in a row: the total column counts citizens, not ticks (§5, multi-response)
    select 'profile' as row_dim, profile as "row", n from profile_groups
    union all
    select 'base_profile' as row_dim, base_profile as "row", n from profile_groups

),

grid_rows as (

    select tables.*, row_codes."row", row_codes.row_order
    from tables
    join row_codes using (row_dim)

),

cells as (

    -- every cell of the grid, zeros included (§5)
    select
        grid_rows.*,
        col_codes.col,
        col_codes.col_order,
        coalesce(sum(table_counts.n), 0)::bigint as n
    from grid_rows
    join col_codes using (table_id)
    left join table_counts
        on table_counts.table_id = grid_rows.table_id
        and table_counts."row" = grid_rows."row"
        and table_counts.col = col_codes.col
    group by all

),

row_totals as (

    select
        grid_rows.*,
        'total' as col,
        9999 as col_order,
        coalesce(sum(members.n), 0)::bigint as n
    from grid_rows
    left join members using (row_dim, "row")
    group by all

),

body as (

    select * from cells
    union all
    select * from row_totals

),

total_row as (

    -- each citizen is in exactly one row, so the total row is the sum of the rows
    select
        table_id, table_order, row_dim, multi_response,
        'total' as "row", 9999 as row_order, col, col_order,
        sum(n)::bigint as n
    from body
    group by all

),

with_totals as (

    select * from body
    union all by name
    select * from total_row

),

left_out as (

    -- a column shown only when non-zero is left out when it is zero in every row (§5)
    select table_id, col
    from col_codes
    join total_row using (table_id, col)
    where col_codes.shown_only_when_non_zero and total_row.n = 0

),

shown as (

    select * from with_totals
    anti join left_out using (table_id, col)

),

with_denominator as (

    select
        *,
        case when col = 'total' then 'total' else "row" end as denominator_row,
        'total' as denominator_col
    from shown

),

shares as (

    select
        cell.table_id,
        cell.table_order,
        cell.row_dim,
        cell.multi_response,
        cell."row",
        cell.col,
        cell.row_order,
        cell.col_order,
        cell.n,
        cell.denominator_row,
        cell.denominator_col,
        denominator.n as denominator,
        cell.n / nullif(denominator.n, 0) as share
    from with_denominator as cell
    join shown as denominator
        on denominator.table_id = cell.table_id
        and denominator."row" = cell.denominator_row
        and denominator.col = cell.denominator_col

),

final as (

    select * from shares
    order by table_order, row_order, col_order

)

select * from final
