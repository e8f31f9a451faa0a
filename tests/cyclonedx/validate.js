// Strict CycloneDX JSON validation with the CycloneDX library itself: `node validate.js <file> [1.6]`.
// Prints "valid" and exits 0, or prints the schema errors and exits 1.
const fs = require('fs');
const CDX = require('@cyclonedx/cyclonedx-library');
(async () => {
  const version = process.argv[3] ?? '1.6';
  const spec = { '1.6': CDX.Spec.Version.v1dot6, '1.5': CDX.Spec.Version.v1dot5 }[version];
  const validator = new CDX.Validation.JsonStrictValidator(spec);
  const errors = await validator.validate(fs.readFileSync(process.argv[2], 'utf8'));
  if (errors === null) { console.log('valid'); return; }
  console.log(JSON.stringify(errors, null, 2));
  process.exit(1);
})().catch(e => { console.error(e); process.exit(2); });
