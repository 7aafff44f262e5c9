-- expect: time budget
while true do end
