/* File operations beneath a directory fd (beneath.c). */
#ifndef DWCP_BENEATH_H
#define DWCP_BENEATH_H
#define NAPI_VERSION 8
#include <node_api.h>

/* Add openBeneath, statAt, mkdirAt, unlinkAt, removeAt, clearDirAt, renameAt,
   syncFs, writeWholeBeneath, renameBeneath, renameManyBeneath, readWholeBeneath
   and the O_PATH constant to exports. */
void beneath_register(napi_env env, napi_value exports);

#endif
