-- expect: read-only table
kith.entity.get = function() return {} end
