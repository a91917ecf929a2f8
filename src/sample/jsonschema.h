/* jsonschema.h - JSON Schema to GBNF (the grammar module's text), for
 * OpenAI's response_format json_schema / json_object and tool-call
 * arguments.
 *
 * The grammar's sentences are JSON texts valid against the schema, in a
 * canonical form chosen so a weak model cannot wander: every sentence is
 * valid (ajv + ajv-formats, JSON Schema 2020-12, is the oracle of the
 * tests), but not every valid text is a sentence. The form:
 *
 *  - Whitespace: none before or after the value; inside objects and arrays
 *    at most one json-ws between two tokens: nothing, one space, or a
 *    newline and up to 20 spaces or tabs (pretty printing to depth 5).
 *  - Strings: any code point but '"', '\' and controls < 0x20; escapes
 *    \" \\ \/ \b \f \n \r \t and \uXXXX, where a surrogate \uD8xx must be
 *    followed by its low half (lone surrogates are refused: jansson would
 *    refuse them too). One json-char is one code point, so minLength /
 *    maxLength count as JSON Schema counts.
 *  - Numbers: -? (0 | [1-9] digit{0,14}) (. digit{1,15})? ([eE] [-+]?
 *    digit{1,2})?: at most 15 integer digits (JSONSCHEMA_INT_DIGITS, exact
 *    in a double, so a validator sees the value written) and no infinity.
 *    Integers: the integer part alone ("1.0" and "1e2" are not written).
 *  - Objects: declared properties in declaration order, each once (the
 *    optional ones may be left out); with additionalProperties absent, true
 *    or a schema, other properties may follow the declared ones, with keys
 *    that are not declared names and have no escapes (so no key is ever
 *    duplicated), and values any JSON value (or the schema's). With false
 *    (OpenAI strict) only the declared properties.
 *  - enum / const values: their compact JSON text (keys in their order,
 *    reals in their shortest round-trip form).
 *
 * Supported: type (a name or a list: ["string","null"] is nullable);
 * properties, required (every required name must be declared),
 * additionalProperties; items (a schema or boolean), prefixItems, minItems,
 * maxItems; enum and const (beside type only: the values of other types are
 * dropped); anyOf; oneOf as anyOf (sound only when its branches are
 * disjoint, as they are in practice: a text matching two would be accepted);
 * allOf of one schema; $ref to "#" or a JSON pointer in the same document
 * ("#/$defs/x", "#/definitions/x"), one rule per target, so recursion
 * compiles (a cycle consuming no input is an error); string format date,
 * time, date-time (RFC 3339 with a time zone, leap years exact, no leap
 * second, [Tt ] separator, up to 9 fraction digits), uuid (without urn:),
 * email (ajv-formats' grammar, labels of at most 63 characters), ipv4;
 * number format int32 / int64 (integers; int32 in its range), float and
 * double (no constraint); string formats do not constrain numbers and
 * number formats do not constrain strings, as in ajv-formats;
 * minLength / maxLength; integer minimum / maximum / exclusiveMinimum /
 * exclusiveMaximum (exact digit ranges); number bounds when the bounds are
 * integers (exact, written without an exponent and with at most 15 digits
 * in all: the value a validator reads is the value written).
 * maxItems / maxLength over GRAMMAR_MAX_REPEAT admit at most
 * GRAMMAR_MAX_REPEAT (a subset, never an invalid text); minItems /
 * minLength over it are STATUS_LIMIT. Bounds past 15 digits are clamped
 * (integers with 15 digits at most are all that is written).
 * pattern: an ECMAScript regular expression as ajv reads it (the u flag:
 * code points), matched anywhere in the string unless anchored. Supported:
 * literals; escapes \d \D \w \W \s \S, \t \n \v \f \r \0 \cX \xHH
 * \uHHHH (a surrogate pair is one code point) \u{H...}, and \ before a
 * syntax character (and '-' in a class); '.' (any code point but \n \r
 * U+2028 U+2029); classes [a-z0-9_] and [^...] (\b in a class is
 * backspace); '|'; groups ( ) and (?: ); quantifiers * + ? {m} {m,} {m,n}
 * and their lazy forms (the same language), m <= GRAMMAR_MAX_REPEAT and n
 * clamped to it (a subset); '^' at the start and '$' at the end of a
 * top-level alternative. The matched characters are written raw or with
 * their short escape (\" \\ \/ \b \f \n \r \t), never \uXXXX; the
 * unanchored rest is any json-char. STATUS_UNSUPPORTED, naming the
 * construct and the offset ("pattern at properties.code.pattern: lookahead
 * '(?=' is not supported (offset 1)"): lookahead and lookbehind, named
 * groups, flags or modifiers "(?", backreferences \1 \k, \b \B outside a
 * class, \p{...} \P{...}, anchors elsewhere, a lone surrogate, '*' '+'
 * {m,} on a part that can match "", a group with two alternatives that can
 * match "", a set of no writable character, pattern beside minLength /
 * maxLength / format. STATUS_INVALID: what is not a u-mode regex (a bad
 * escape, '\-' outside a class, a lone ']' '}' or '{', unbalanced
 * parentheses). STATUS_LIMIT: over JSONSCHEMA_MAX_PATTERN bytes, groups
 * nested over JSONSCHEMA_MAX_DEPTH.
 * The annotations $schema, $id (at the root only), title, description,
 * examples, default, $comment, deprecated, readOnly and writeOnly are
 * ignored. Everything else - multipleOf, non-integer number
 * bounds, not, if/then/else, patternProperties, propertyNames, min/
 * maxProperties, uniqueItems, contains, remote refs, other formats,
 * siblings of $ref/anyOf/enum other than annotations, the false schema - is
 * STATUS_UNSUPPORTED (or STATUS_INVALID for a malformed schema) with a
 * message naming the keyword and where: "unsupported keyword
 * 'patternProperties' at properties.address.patternProperties". The server
 * answers 400 with it.
 *
 * The input is untrusted: nesting, properties, enum values, compiled
 * subschemas and output bytes are bounded by the limits below, $ref targets
 * are compiled once each (a worklist, no recursion through refs).
 *
 * Not here: applying the grammar (grammar.h, the sampler), the
 * request parsing (serve/). */
#ifndef CGPT_SAMPLE_JSONSCHEMA_H
#define CGPT_SAMPLE_JSONSCHEMA_H

#include <jansson.h>
#include <stddef.h>

#include "core/err.h"
#include "sample/grammar.h"

#define JSONSCHEMA_MAX_DEPTH 64               /* nested subschemas */
#define JSONSCHEMA_MAX_PROPERTIES 256         /* properties of one object */
#define JSONSCHEMA_MAX_ENUM 1024              /* enum values of one schema */
#define JSONSCHEMA_MAX_PREFIX_ITEMS 64        /* prefixItems of one array */
#define JSONSCHEMA_MAX_NODES 8192             /* subschemas compiled per schema */
#define JSONSCHEMA_MAX_BYTES GRAMMAR_MAX_TEXT /* GBNF text of one buffer */
#define JSONSCHEMA_MAX_PREFIX 64              /* bytes of a rule prefix */
#define JSONSCHEMA_MAX_RULE_NAME 128          /* bytes of a generated rule name */
#define JSONSCHEMA_INT_DIGITS 15              /* integer digits written */
#define JSONSCHEMA_MAX_PATTERN 4096           /* bytes of one pattern */

/* The shared rules every buffer may hold (emitted once, when first used). */
#define JSONSCHEMA_VALUE_RULE "json-value"   /* any JSON value */
#define JSONSCHEMA_OBJECT_RULE "json-object" /* any JSON object */
#define JSONSCHEMA_WS_RULE "json-ws"         /* the bounded whitespace */

/* GBNF text under construction: rules of any number of schemas (each under
 * its prefix) and, once each, the shared json-* rules they use. Owned by
 * the caller; jsonschema_buf_free accepts a zeroed one. */
typedef struct {
    char *text; /* NUL-terminated (NULL while empty) */
    size_t len, cap;
    unsigned prims;  /* shared rules already in text (private bits) */
    char *prefixes;  /* prefixes used, each followed by '\n' (private) */
    size_t n_prefix; /* bytes of prefixes */
} JsonSchemaBuf;

void jsonschema_buf_init(JsonSchemaBuf *b);
void jsonschema_buf_free(JsonSchemaBuf *b);

/* Append raw GBNF text (the caller's own rules, such as a root joining
 * several schemas) as given. STATUS_LIMIT past JSONSCHEMA_MAX_BYTES. */
Status jsonschema_buf_append(JsonSchemaBuf *b, const char *text, size_t len, Err *err);

/* Make sure the rule 'name' (JSONSCHEMA_VALUE_RULE, JSONSCHEMA_OBJECT_RULE
 * or JSONSCHEMA_WS_RULE) and what it uses are in 'b'. STATUS_INVALID for
 * another name. */
Status jsonschema_buf_use(JsonSchemaBuf *b, const char *name, Err *err);

/* Compile 'schema' (borrowed) into rules appended to 'out': the top rule is
 * named 'prefix' itself and writes its name into rule_name (cap bytes);
 * helper rules are named "<prefix>-..."; the shared json-* rules are added
 * once per buffer. 'prefix' is [A-Za-z0-9-]+ of at most
 * JSONSCHEMA_MAX_PREFIX bytes, not "json" or "json-...", and not equal to
 * another prefix of the buffer or one followed by '-' (the rule names
 * would clash). The rules are checked by grammar_parse before returning (a
 * $ref cycle that consumes nothing is an error here, not later). On
 * failure 'out' is as it was and 'err' says what and where (see the file
 * comment). */
Status jsonschema_compile(JsonSchemaBuf *out, const json_t *schema, const char *prefix,
                          char *rule_name, size_t cap, Err *err);

/* A whole grammar whose root is the schema. *gbnf: returns owned
 * NUL-terminated text, free with free(); NULL on failure. */
Status jsonschema_to_gbnf(const json_t *schema, char **gbnf, Err *err);

/* The grammar of response_format json_object: root = any JSON object
 * (json-object and the rules it uses). A static string. */
const char *jsonschema_object_gbnf(void);

#endif
