/*-------------------------------------------------------------------------
 *
 * tag.c
 *	  How a value is spelled in a tag, and the generation slot of a tag.
 *
 * A writer tags a row by the values of its partition and key columns
 * ("T/city=Boston", "T/id=42"); a reader tags an answer by the parameter it
 * filters those columns with.  The two must be spelled the same way exactly
 * when the values are equal by the column's equality, in whatever session
 * either runs: otherwise a write leaves an equal reader's answer stale.  A
 * value's output text does not do that: numeric 1.0 and 1.00 are equal but
 * print differently, and so are float8 0 and -0, 'Books' and 'books' under
 * a case-insensitive collation, '1 day' and '24 hours'; a timestamptz, date
 * or interval prints differently under another TimeZone, DateStyle or
 * IntervalStyle.  So a value is spelled from its identity:
 *
 *	 text	 the output text, for the few types whose text is the same in
 *			 every session and which are equal exactly when their text is:
 *			 integers, oid, boolean, "char", uuid, enums, and text, varchar
 *			 and name under a deterministic collation;
 *	 oid	 an OID alias type (regclass, ...) by its OID in decimal: its
 *			 text depends on search_path;
 *	 hash	 every other type with hash equality: '#' and the 16 hex
 *			 digits of the type's extended hash (seed 0) under the column's
 *			 collation.  Hash opclasses guarantee that equal values hash
 *			 alike, which is all a tag needs; two unequal values with the
 *			 same hash only invalidate each other needlessly, as two tags
 *			 sharing a generation slot do.
 *
 * A type with none of these (json, point, xml, ...) cannot be spelled:
 * registration refuses a tag on such a column, and the row trigger does not
 * tag it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "housing_cache.h"

/*
 * Generation slots.  A tag has a slot of its own, and one per column of its
 * table ("column slots"): its own slot is bumped when a row
 * enters or leaves it (INSERT, DELETE, a row moving to another partition
 * value) or by invalidate(); the column slot named "" ("any") by every
 * write of a row with that tag; the slot of column c when an UPDATE changes
 * c.  An answer that reads columns C of the rows of a tag depends on the
 * tag's own slot and the slots of C; one that reads whole rows on "any".
 */

/* the hash of a tag in this database, from which its slots follow */
uint64
HcTagHash(const char *tag, int len)
{
	return hash_bytes_extended((const unsigned char *) tag, len, (uint64) MyDatabaseId);
}

/* the hash of a column's name ("" for "any"), for HcColumnSlot */
uint64
HcColumnHash(const char *column)
{
	/* a seed of its own: a column's hash is never a tag's */
	return hash_bytes_extended((const unsigned char *) column, strlen(column),
							   UINT64CONST(0x68635f636f6c756d)) | 1;
}

uint32
HcSlotOfHash(uint64 taghash)
{
	return (uint32) (taghash & (hc_shared->nslots - 1));
}

/* the slot of one column of a tag */
uint32
HcColumnSlot(uint64 taghash, uint64 columnhash)
{
	return HcSlotOfHash(hash_combine64(taghash, columnhash));
}

/*
 * The generation slot of a tag in this database (its own slot).
 */
uint32
HcTagSlot(const char *tag, int len)
{
	return HcSlotOfHash(HcTagHash(tag, len));
}

static bool
is_oid_alias(Oid type)
{
	switch (type)
	{
		case REGCLASSOID:
		case REGPROCOID:
		case REGPROCEDUREOID:
		case REGOPEROID:
		case REGOPERATOROID:
		case REGTYPEOID:
		case REGCONFIGOID:
		case REGDICTIONARYOID:
		case REGNAMESPACEOID:
		case REGROLEOID:
		case REGCOLLATIONOID:
			return true;
		default:
			return false;
	}
}

/*
 * How values of a type, compared under a collation, are spelled in tags.
 * Domains are spelled as their base type.
 */
HcSpelling
HcTagSpellingOf(Oid type, Oid collation)
{
	Oid			base = getBaseType(type);
	TypeCacheEntry *tce;

	if (is_oid_alias(base))
		return HC_SPELL_OID;
	switch (base)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
		case BOOLOID:
		case CHAROID:
		case UUIDOID:
			return HC_SPELL_TEXT;
		case TEXTOID:
		case VARCHAROID:
		case NAMEOID:
			/* deterministic collations compare text byte for byte */
			if (!OidIsValid(collation) || get_collation_isdeterministic(collation))
				return HC_SPELL_TEXT;
			break;
		default:
			if (type_is_enum(base))
				return HC_SPELL_TEXT;
			break;
	}
	tce = lookup_type_cache(base, TYPECACHE_HASH_EXTENDED_PROC);
	if (OidIsValid(tce->hash_extended_proc))
		return HC_SPELL_HASH;
	return HC_SPELL_NONE;
}

/*
 * Prepare to spell values of a type under a collation; the function it
 * calls is looked up into cxt.  Returns false if the type cannot be spelled.
 */
bool
HcTagSpellerInit(HcTagSpeller *sp, Oid type, Oid collation, MemoryContext cxt)
{
	Oid			base = getBaseType(type);

	memset(sp, 0, sizeof(*sp));
	sp->how = HcTagSpellingOf(type, collation);
	sp->collation = collation;
	switch (sp->how)
	{
		case HC_SPELL_TEXT:
			{
				Oid			output;
				bool		varlena;

				getTypeOutputInfo(base, &output, &varlena);
				fmgr_info_cxt(output, &sp->proc, cxt);
			}
			break;
		case HC_SPELL_HASH:
			fmgr_info_cxt(lookup_type_cache(base, TYPECACHE_HASH_EXTENDED_PROC)->hash_extended_proc,
						  &sp->proc, cxt);
			break;
		case HC_SPELL_OID:
		case HC_SPELL_NONE:
			break;
	}
	return sp->how != HC_SPELL_NONE;
}

/*
 * Append the spelling of a value (not NULL) to buf.
 */
void
HcTagAppendValue(StringInfo buf, const HcTagSpeller *sp, Datum value)
{
	switch (sp->how)
	{
		case HC_SPELL_TEXT:
			{
				char	   *text = OutputFunctionCall((FmgrInfo *) &sp->proc, value);

				appendStringInfoString(buf, text);
				pfree(text);
			}
			break;
		case HC_SPELL_OID:
			appendStringInfo(buf, "%u", DatumGetObjectId(value));
			break;
		case HC_SPELL_HASH:
			{
				uint64		h;

				h = DatumGetUInt64(FunctionCall2Coll((FmgrInfo *) &sp->proc, sp->collation,
													 value, Int64GetDatum(0)));
				appendStringInfo(buf, "#%016" INT64_MODIFIER "x", h);
			}
			break;
		case HC_SPELL_NONE:
			elog(ERROR, "a value of this type cannot be spelled in a tag");
	}
}

/*
 * Why values of a type cannot be spelled in tags, for error messages.
 */
const char *
HcTagSpellingRefusal(Oid type)
{
	return psprintf("Type %s has no hash equality, so equal values cannot be told apart from unequal ones in a tag.",
					format_type_be(type));
}
