/* import.h - conversations from other programs' exports into the shape
 * store_conv_import() takes (store.h: {title, messages: [{id, parent, role,
 * content}], current_leaf}).
 *
 * ChatGPT's data export (conversations.json) holds, per conversation, a
 * "mapping" of nodes {id, message: {author: {role}, content: {parts}},
 * parent, children} and a "current_node". User and assistant messages are
 * kept, system nodes left out (their children hang from their parent);
 * ChatGPT's tool use becomes tool calls and results: an assistant node with
 * a "recipient" other than "all" an assistant message with one call to it,
 * a "tool" node a tool message answering the nearest call above it (import.c
 * says how arguments and ids are made); string parts are joined by newlines (other parts, such as
 * images, are dropped). Node ids stay message ids, so current_node picks the
 * branch shown. Pure: no store, bounded by the input's size. */
#ifndef CGPT_SERVE_IMPORT_H
#define CGPT_SERVE_IMPORT_H

#include <jansson.h>
#include <stdbool.h>

/* Does 'conv' look like a ChatGPT export conversation (has a mapping)? */
bool import_is_chatgpt(const json_t *conv);

/* Convert one ChatGPT conversation; owned result (never NULL for an object
 * input; a mapping without messages gives an empty list). */
json_t *import_chatgpt(const json_t *conv);

#endif
