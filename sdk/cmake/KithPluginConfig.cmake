# CMake helper of the Kith plugin SDK, installed as
# <prefix>/lib/cmake/KithPlugin/KithPluginConfig.cmake. In a plugin's project:
#
#   find_package(KithPlugin REQUIRED)        # CMAKE_PREFIX_PATH=<prefix> if not /usr/local
#   kith_add_plugin(myplugin myplugin.c)     # builds myplugin.so
#   install(TARGETS myplugin LIBRARY DESTINATION ${KITH_PLUGIN_DIR})
#
# KITH_PLUGIN_INCLUDE_DIR: where kith/plugin.h is; KITH_PLUGIN_DIR: the default
# plugin directory of this installation.
if(NOT KITH_PLUGIN_INCLUDE_DIR)
  get_filename_component(_kith_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
  set(KITH_PLUGIN_INCLUDE_DIR "${_kith_prefix}/include")
  set(KITH_PLUGIN_DIR "${_kith_prefix}/lib/kith/plugins")
endif()
if(NOT EXISTS "${KITH_PLUGIN_INCLUDE_DIR}/kith/plugin.h")
  set(KithPlugin_FOUND FALSE)
  set(KithPlugin_NOT_FOUND_MESSAGE "no kith/plugin.h under ${KITH_PLUGIN_INCLUDE_DIR}")
  return()
endif()

# kith_add_plugin(<name> <source>...): a C11 module named <name>.so (no "lib"
# prefix) that exports only its descriptor (hidden visibility by default).
function(kith_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_include_directories(${name} PRIVATE "${KITH_PLUGIN_INCLUDE_DIR}")
  set_target_properties(${name} PROPERTIES PREFIX "" C_STANDARD 11 C_STANDARD_REQUIRED ON
    C_VISIBILITY_PRESET hidden)
endfunction()
