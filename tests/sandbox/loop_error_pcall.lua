-- expect: time budget
while true do pcall(error, "swallow me") end
