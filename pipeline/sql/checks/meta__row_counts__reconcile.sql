-- data contract: rows read = rows loaded + rows quarantined, per table.
select * from meta.row_counts where rows_read <> rows_loaded + rows_quarantined
