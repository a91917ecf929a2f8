/* chat_builtin.c - the built-in chat templates used when a model carries no
 * tokenizer.chat_template and the user gives none: the official templates
 * of three families, byte for byte as their tokenizer_config.json publish
 * them (tests/chat/templates/{chatml,llama3-instruct,llama2-chat}.jinja and
 * SOURCES.md there), so a built-in renders exactly as the real thing.
 *
 * Deliberately not here: picking a built-in (chat.c does that from the
 * vocabulary) and any rendering (template.c). */
#include "chat/chat.h"

/* ChatML as teknium/OpenHermes-2.5-Mistral-7B publishes it. */
static const char CHATML_SRC[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['conte"
    "nt'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>a"
    "ssistant\\n' }}{% endif %}";

/* meta-llama/Meta-Llama-3-8B-Instruct (the revision with add_generation_prompt). */
static const char LLAMA3_SRC[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|"
    "start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | tri"
    "m + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% en"
    "dif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assi"
    "stant<|end_header_id|>\n\n' }}{% endif %}";

/* meta-llama/Llama-2-7b-chat-hf. */
static const char LLAMA2_SRC[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set sys"
    "tem_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% se"
    "t system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['"
    "role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles mus"
    "t alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and "
    "system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n"
    "\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{"
    "% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]'"
    " }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token "
    "}}{% endif %}{% endfor %}";

const char *chat_builtin_source(ChatBuiltin b) {
    switch (b) {
    case CHAT_CHATML:
        return CHATML_SRC;
    case CHAT_LLAMA3:
        return LLAMA3_SRC;
    case CHAT_LLAMA2:
        return LLAMA2_SRC;
    case CHAT_BUILTIN_NONE:
        break;
    }
    return NULL;
}

const char *chat_builtin_name(ChatBuiltin b) {
    switch (b) {
    case CHAT_CHATML:
        return "chatml";
    case CHAT_LLAMA3:
        return "llama3";
    case CHAT_LLAMA2:
        return "llama2";
    case CHAT_BUILTIN_NONE:
        break;
    }
    return "none";
}
