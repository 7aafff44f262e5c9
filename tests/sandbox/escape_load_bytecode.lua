-- expect: global 'load'
-- bytecode would need load with mode "b"; neither load nor string.dump exist
return load("\27Lua", "x", "b")
