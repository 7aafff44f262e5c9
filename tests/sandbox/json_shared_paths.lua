-- expect: more than 200,000 values
-- one table reachable along 2^40 paths: the encoder counts values, not tables
local t = {}
for i = 1, 40 do t = {a = t, b = t} end
return kith.json.encode(t)
