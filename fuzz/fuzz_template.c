/*-------------------------------------------------------------------------
 *
 * fuzz_template.c
 *	  libFuzzer harness for tag template parsing: hc_parse_template() of
 *	  extension/registry.c, and the slots of an answer: hc_template_slots()
 *	  of registry.c and hc_answer_slots() of extension/fetch.c (static
 *	  there, so both files are compiled in; tag.c is linked for HcTagSlot).
 *
 * Input: one byte for the number of parameters the query has (0..33), then
 * the template text, then optionally a NUL and the text of the parameter.  A template that is refused
 * must be refused with ERROR 22023 (invalid_parameter_value), never
 * another error or a crash.  An accepted one must be consistent:
 *
 *	 - "T" alone: a table tag, no prefix, no parameter;
 *	 - "T/col=$n": 1 <= n <= nparams, prefix "T/col=";
 *	 - "T/col=value": the literal is the whole template;
 *	 - the table tag is the text before the first '/', never empty; the
 *	   column (what hc_resolve_template cuts out of the prefix) is never
 *	   empty and holds no '=';
 *	 - the tag a reader builds from it (hc_answer_slots: prefix + the
 *	   parameter's text, or the literal) is spelled exactly as the writer's
 *	   trigger spells it ("%s/%s=" table, column, then the value), and the
 *	   slots of both are below nslots;
 *	 - registry.c's own hc_template_slots + fetch.c's hc_answer_slots, given
 *	   the parameter's text (the input after the template's NUL) or NULL,
 *	   depend on exactly the slots a writer of that value bumps: the tag's
 *	   and the table's reset tag's (or, for NULL and table templates, the
 *	   table's).  The template's column is taken to be spelled as its text
 *	   (HC_SPELL_TEXT: text under a deterministic collation, integers, ...),
 *	   as hc_resolve_template would set it up; the catalog it reads is not
 *	   here.
 *
 *	 - "$n" is accepted in canonical form only: digits, no sign, no leading
 *	   zero or blank.
 *
 *-------------------------------------------------------------------------
 */
#include "shim.h"

#include "../extension/registry.c"
#include "../extension/fetch.c"

/*
 * tag.c's HcTagAppendValue is linked in (hc_answer_slots calls it for
 * columns not spelled as their text) and calls these.  Templates here are
 * spelled as their text, from the parameter's text: neither may run.
 */
char *
OutputFunctionCall(FmgrInfo *flinfo, Datum val)
{
	shim_fail(__FILE__, __LINE__, "not reached",
			  "an output function was called for a template spelled as its text");
}

Datum
FunctionCall2Coll(FmgrInfo *flinfo, Oid collation, Datum arg1, Datum arg2)
{
	shim_fail(__FILE__, __LINE__, "not reached",
			  "a hash function was called for a template spelled as its text");
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	shim_init();
	return 0;
}

static void
check_template(const char *tag, int nparams, const HcTagTemplate *tt)
{
	const char *slash = strchr(tag, '/');
	size_t		tlen;
	size_t		plen;
	char	   *column;
	StringInfoData reader;
	StringInfoData writer;
	const char *value = "Boston";

	SHIM_CHECK(tt->table_tag != NULL, "no table tag for [%s]", tag);
	tlen = strlen(tt->table_tag);
	SHIM_CHECK(tlen > 0, "empty table tag for [%s]", tag);
	SHIM_CHECK(strchr(tt->table_tag, '/') == NULL, "table tag [%s] holds a '/'", tt->table_tag);

	if (slash == NULL)
	{
		SHIM_CHECK(tt->prefix == NULL && tt->param == 0 && tt->literal == NULL,
				   "a table tag [%s] got a prefix, parameter or literal", tag);
		SHIM_CHECK(strcmp(tt->table_tag, tag) == 0, "table tag [%s] of [%s]", tt->table_tag, tag);
		SHIM_CHECK(HcTagSlot(tt->table_tag, tlen) < hc_shared->nslots, "slot");
		return;
	}

	SHIM_CHECK(tt->prefix != NULL, "no prefix for [%s]", tag);
	SHIM_CHECK((size_t) (slash - tag) == tlen && strncmp(tag, tt->table_tag, tlen) == 0,
			   "table tag [%s] is not what precedes the first '/' of [%s]", tt->table_tag, tag);
	plen = strlen(tt->prefix);
	SHIM_CHECK(plen >= tlen + 3, "prefix [%s] too short for a column", tt->prefix);
	SHIM_CHECK(strncmp(tt->prefix, tag, plen) == 0, "prefix [%s] of [%s]", tt->prefix, tag);
	SHIM_CHECK(tt->prefix[tlen] == '/' && tt->prefix[plen - 1] == '=', "prefix [%s]", tt->prefix);

	/* the column, cut out as hc_resolve_template does */
	column = pnstrdup(tt->prefix + strlen(tt->table_tag) + 1,
					  strlen(tt->prefix) - strlen(tt->table_tag) - 2);
	SHIM_CHECK(column[0] != '\0', "empty column in [%s]", tag);
	SHIM_CHECK(strchr(column, '=') == NULL, "column [%s] holds '='", column);

	if (tt->param > 0)
	{
		const char *digits = tag + plen + 1;

		SHIM_CHECK(tt->param <= nparams, "parameter $%d of %d", tt->param, nparams);
		SHIM_CHECK(tag[plen] == '$', "parameter template [%s] without '$'", tag);
		SHIM_CHECK(tt->literal == NULL, "parameter template with a literal");
		SHIM_CHECK(digits[0] >= '1' && digits[0] <= '9' &&
				   strspn(digits, "0123456789") == strlen(digits),
				   "parameter written in non-canonical form: [%s] taken as $%d", tag, tt->param);
	}
	else
	{
		SHIM_CHECK(tt->param == 0 && tt->literal != NULL && strcmp(tt->literal, tag) == 0,
				   "literal [%s] of [%s]", tt->literal ? tt->literal : "(null)", tag);
		value = tag + plen;
	}

	/* the reader's tag (hc_answer_slots) ... */
	initStringInfo(&reader);
	if (tt->param > 0)
	{
		appendStringInfoString(&reader, tt->prefix);
		appendStringInfoString(&reader, value);
	}
	else
		appendStringInfoString(&reader, tt->literal);
	/* ... and the writer's (remember_column_tag), for the same value */
	initStringInfo(&writer);
	appendStringInfo(&writer, "%s/%s=", tt->table_tag, column);
	appendStringInfoString(&writer, value);
	SHIM_CHECK(strcmp(reader.data, writer.data) == 0,
			   "reader tag [%s] and writer tag [%s] differ", reader.data, writer.data);
	SHIM_CHECK(HcTagSlot(reader.data, reader.len) < hc_shared->nslots, "slot");
	resetStringInfo(&reader);
	appendStringInfo(&reader, "%s/*", tt->table_tag);
	SHIM_CHECK(HcTagSlot(reader.data, reader.len) < hc_shared->nslots, "slot");
}

/*
 * The slots the read path makes an answer of this template depend on, for the
 * parameter text value (NULL: SQL NULL), against the slots a writer bumps.
 */
static void
check_answer_slots(const HcTagTemplate *tt, int nparams, const char *value)
{
	static HcQueryDef def;
	Datum		values[HC_MAX_PARAMS + 2];
	bool		nulls[HC_MAX_PARAMS + 2];
	char	   *canon[HC_MAX_PARAMS + 2];
	uint32		slots[HC_MAX_TAGS];
	uint32		want[2];
	int			nwant = 0;
	int			n;
	char	   *column;
	StringInfoData tags;
	char	   *want_tags[2];
	int			nwant_tags = 0;
	int			off = 0;
	char	   *table_reset = psprintf("%s/*", tt->table_tag);

	memset(&def, 0, sizeof(def));
	def.ntemplates = 1;
	def.nparams = nparams;
	def.templates[0] = *tt;
	/* a column spelled as its text, as hc_resolve_template finds it */
	def.templates[0].speller.how = HC_SPELL_TEXT;
	hc_template_slots(&def.templates[0]);
	for (int i = 0; i < HC_MAX_PARAMS + 2; i++)
	{
		values[i] = (Datum) 0;	/* not read: the text is in canon */
		nulls[i] = (value == NULL);
		canon[i] = (char *) value;
	}
	initStringInfo(&tags);
	n = hc_answer_slots(&def, values, nulls, canon, NULL, slots, &tags);

	/* what a writer bumps (invalidate.c: remember_column_tag, remember_table_reset) */
	if (tt->prefix == NULL || (tt->param > 0 && value == NULL))
	{
		want[nwant++] = HcTagSlot(tt->table_tag, strlen(tt->table_tag));
		want_tags[nwant_tags++] = tt->table_tag;
	}
	else
	{
		char	   *writer;
		char	   *reset = psprintf("%s/*", tt->table_tag);

		column = pnstrdup(tt->prefix + strlen(tt->table_tag) + 1,
						  strlen(tt->prefix) - strlen(tt->table_tag) - 2);
		writer = psprintf("%s/%s=%s", tt->table_tag, column,
						  tt->param > 0 ? value : tt->literal + strlen(tt->prefix));
		want[nwant++] = HcTagSlot(writer, strlen(writer));
		want_tags[nwant_tags++] = writer;
		if (HcTagSlot(reset, strlen(reset)) != want[0])
			want[nwant++] = HcTagSlot(reset, strlen(reset));
	}
	SHIM_CHECK(n == nwant, "the answer depends on %d slot(s), a writer bumps %d", n, nwant);
	for (int i = 0; i < n; i++)
		SHIM_CHECK(slots[i] == want[i], "slot %d: %u, a writer bumps %u", i, slots[i], want[i]);

	/* the tags the edge hears of: what a writer names, then the table's reset tag */
	if (strcmp(want_tags[0], table_reset) != 0)
		want_tags[nwant_tags++] = table_reset;
	for (int i = 0; i < nwant_tags; i++)
	{
		SHIM_CHECK(off < tags.len, "tag %d (%s) missing from the answer's tags", i, want_tags[i]);
		SHIM_CHECK(strcmp(tags.data + off, want_tags[i]) == 0, "tag %d is [%s], a writer names [%s]",
				   i, tags.data + off, want_tags[i]);
		off += strlen(tags.data + off) + 1;
	}
	SHIM_CHECK(off == tags.len, "the answer lists more tags than a writer names");
}

int
LLVMFuzzerTestOneInput(const uint8 *data, size_t size)
{
	int			nparams;
	size_t		len;
	char	   *tag;
	HcTagTemplate tt;
	bool		raised;
	char	   *value = NULL;

	if (size < 1)
		return 0;
	shim_begin();

	nparams = data[0] % 34;
	len = strnlen((const char *) data + 1, size - 1);
	tag = palloc(len + 1);
	memcpy(tag, data + 1, len);
	tag[len] = '\0';

	/* after the template's NUL, the parameter's text (none: SQL NULL) */
	if (len + 1 < size)
	{
		size_t		vlen = strnlen((const char *) data + len + 2, size - len - 2);

		value = pnstrdup((const char *) data + len + 2, vlen);
	}

	raised = SHIM_CATCH_ERROR(hc_parse_template(tag, nparams, &tt));
	if (raised)
		SHIM_CHECK(shim_last_sqlstate() == ERRCODE_INVALID_PARAMETER_VALUE,
				   "refused with SQLSTATE %s, not 22023: %s",
				   unpack_sql_state(shim_last_sqlstate()), shim_last_error());
	else
	{
		check_template(tag, nparams, &tt);
		check_answer_slots(&tt, nparams, value);
	}

	shim_end();
	return 0;
}
