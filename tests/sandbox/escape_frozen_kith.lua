-- expect: read-only table
kith.entity = nil
