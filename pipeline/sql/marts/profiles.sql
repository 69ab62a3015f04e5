-- marts.profiles: one row per profile rule of the rules file, in precedence order
-- (definitions §1), so tables and reports can label and order profiles from the warehouse.
-- Parameters: $rule_codes, $rule_labels_da, $rule_labels_en, $rule_depths, $rule_conditions,
-- $base_rule_codes, $base_rule_conditions (parallel lists from the validated rules file),
-- $rules_version,
-- $rules_sha256, $rules_source (so a later report knows the rule set without the file).
with

rules as (

    select
        unnest($rule_codes::varchar[]) as code,
        unnest($rule_labels_da::varchar[]) as label_da,
        unnest($rule_labels_en::varchar[]) as label_en,
        unnest($rule_depths::integer[]) as depth,
        unnest($rule_conditions::varchar[]) as condition,
        unnest(range(1, len($rule_codes::varchar[]) + 1)) as precedence

),

with_base as (

    select
        *,
        list_position($base_rule_codes::varchar[], code) as base_precedence,
        -- the base rule's condition: with the profile rule's, all the report needs to know
        -- how the tables are linked (§6), without the rules file
        ($base_rule_conditions::varchar[])[list_position($base_rule_codes::varchar[], code)]
            as base_condition,
        $rules_version::varchar as rules_version,
        $rules_sha256::varchar as rules_sha256,
        $rules_source::varchar as rules_source
    from rules

)

select * from with_base
